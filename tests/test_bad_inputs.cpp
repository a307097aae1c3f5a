// Every bad input the CLI reads, one table: each row makes a damaged file, runs the command that
// reads it, and expects exit code 2 and one error line naming the file (or key) with what is
// wrong. With DC_BAD_INPUT_TABLE=PATH the table (format, defect, command, exit code, message) is
// also written as Markdown: docs/reliability.md holds its latest output.
#include <gtest/gtest.h>

#include <zip.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "common/prompts.h"
#include "common/strings.h"
#include "harness/hdf5.h"
#include "harness/writer_lock.h"
#include "support/cli.h"
#include "support/damage.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;

namespace {

struct BadInput {
  std::string format, defect;
  std::function<void(const std::string& dir)> make;  // writes the bad file(s) under dir
  std::string args;                                   // CLI arguments; {dir} is replaced
  std::vector<std::string> needles;                   // each must appear in the error line; {dir} replaced
  // Optional: something held while the command runs (a results file's writer lock).
  std::function<std::shared_ptr<void>(const std::string& dir)> hold = nullptr;
};

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string idx(const std::vector<uint32_t>& dims, size_t n) {
  std::string s = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int b = 3; b >= 0; --b) s += static_cast<char>((d >> (8 * b)) & 0xff);
  return s + std::string(n, '\x01');
}

// An .npz (zip, stored) of the given members, as bytes: members may be damaged .npy data.
std::string zip_of(const std::vector<std::pair<std::string, std::string>>& members, const std::string& scratch) {
  int err = 0;
  zip_t* z = zip_open(scratch.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  for (const auto& [name, bytes] : members) {
    zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
    const zip_int64_t i = zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(i), ZIP_CM_STORE, 0);
  }
  zip_close(z);
  std::ifstream in(scratch, std::ios::binary);
  std::string out((std::istreambuf_iterator<char>(in)), {});
  fs::remove(scratch);
  return out;
}

// A version 1.0 .npy with the given header dict text and data bytes.
std::string npy(const std::string& dict, const std::string& data) {
  std::string h = dict + "\n";
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(h.size() & 0xff) + static_cast<char>(h.size() >> 8) + h + data;
}

// A folder holding one valid PNG (the repository's docs figure).
void one_png(const std::string& dir) {
  fs::create_directories(dir);
  fs::copy_file("docs/img/fmnist_ddim15_similarity_up.0.block.2.png", dir + "/0.png");
}

std::string replace_dir(std::string s, const std::string& dir) {
  for (auto p = s.find("{dir}"); p != std::string::npos; p = s.find("{dir}", p + dir.size())) s.replace(p, 5, dir);
  return s;
}

const std::string kYamlHead = "experiment: bad\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n";

std::vector<BadInput> table() {
  std::vector<BadInput> t;
  // Weights (safetensors): every damaged file of the reader tests, through `sample --weights`.
  for (const auto& d : dc::test::damage_cases()) {
    if (d.fails_on_load) continue;
    t.push_back({"safetensors (weights)", d.name, [d](const std::string& dir) { dc::test::write_bytes(dir + "/w.safetensors", d.bytes); },
                 "sample --model ddpm --preset fmnist --weights {dir}/w.safetensors --n 1 --steps 2 --out {dir}/g.png",
                 {"{dir}/w.safetensors", d.phrases.front()}});
  }
  t.push_back({"safetensors (weights)", "1 TB tensor declared",
               [](const std::string& dir) {
                 write(dir + "/w.safetensors", [] {
                   const std::string h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[262144,1048576],\"data_offsets\":[0,1099511627776]}}";
                   std::string b(8, '\0');
                   for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
                   return b + h + std::string(16, '\0');
                 }());
               },
               "inspect {dir}/w.safetensors", {"{dir}/w.safetensors", "beyond the data section"}});
  t.push_back({"safetensors (weights)", "the right format, another model's keys",
               [](const std::string& dir) { fs::copy_file("weights/fmnist/classifier.safetensors", dir + "/w.safetensors"); },
               "sample --model ddpm --preset fmnist --weights {dir}/w.safetensors --n 1 --steps 2 --out {dir}/g.png",
               {"{dir}/w.safetensors"}});
  t.push_back({"safetensors (weights)", "missing file", [](const std::string&) {},
               "sample --model ddpm --preset fmnist --weights {dir}/none.safetensors --n 1 --out {dir}/g.png", {"{dir}/none.safetensors"}});
  // Experiment YAML.
  auto yaml = [&](const std::string& defect, const std::string& text, std::vector<std::string> needles) {
    t.push_back({"experiment YAML", defect, [text](const std::string& dir) { write(dir + "/e.yaml", text); }, "plan {dir}/e.yaml",
                 std::move(needles)});
  };
  yaml("syntax error", "experiment: bad\nbase: {model: [\n", {"{dir}/e.yaml"});
  yaml("unknown key", kYamlHead + "  sampler: {name: ddim, stepz: 10}\n", {"{dir}/e.yaml", "stepz"});
  yaml("wrong type", kYamlHead + "  sampler: {name: ddim, steps: many}\n", {"{dir}/e.yaml", "sampler.steps"});
  yaml("duplicate key", "experiment: bad\nexperiment: twice\nbase:\n  model: {family: ddpm, preset: fmnist, weights: random}\n", {"{dir}/e.yaml", "experiment"});
  yaml("deep nesting", "experiment: bad\nbase: " + std::string(400, '[') + std::string(400, ']') + "\n", {"{dir}/e.yaml"});
  yaml("NaN where a count is expected", kYamlHead + "  samples: {n: .nan}\n", {"{dir}/e.yaml", "samples.n"});
  yaml("sweep of 10^9 runs", kYamlHead + "sweep:\n  samples.seed: [" + [] {
    std::string s;
    for (int i = 0; i < 1000; ++i) s += (i ? "," : "") + std::to_string(i);
    return s;
  }() + "]\n  cache.interval: [" + [] {
    std::string s;
    for (int i = 0; i < 1000; ++i) s += (i ? "," : "") + std::to_string(i + 2);
    return s;
  }() + "]\n  sampler.steps: [" + [] {
    std::string s;
    for (int i = 0; i < 1000; ++i) s += (i ? "," : "") + std::to_string(i + 10);
    return s;
  }() + "]\n", {"{dir}/e.yaml", "runs"});
  yaml("not YAML at all (binary)", std::string("\x89PNG\r\n\x1a\n\0\0", 10), {"{dir}/e.yaml"});
  yaml("bytes that are not UTF-8 in a value", kYamlHead + "  sampler: {name: \"dd\xc8\"}\n", {"{dir}/e.yaml", "UTF-8"});
  yaml("a YAML escape that decodes to a byte that is not UTF-8 (\\_)", kYamlHead + "  sampler: {name: \"dd\\_im\"}\n", {"{dir}/e.yaml", "UTF-8"});
  yaml("an infinite non-uniform power (the schedule search would never end)",
       kYamlHead + "  sampler: {name: ddim, steps: 10}\n  cache: {enabled: true, k: 1, interval: 2, schedule: nonuniform, center: 5, power: inf}\n",
       {"{dir}/e.yaml", "cache.power"});
  yaml("too few bootstrap resamples", kYamlHead + "  metrics: {bootstrap: 5}\n", {"{dir}/e.yaml", "base.metrics.bootstrap"});
  yaml("timing repeats of 0", kYamlHead + "  timing: {repeats: 0}\n", {"{dir}/e.yaml:4", "base.timing.repeats", "1 (no repeat) to 100"});
  yaml("a batch beyond 32 bits (was wrapped to 1215752192)", kYamlHead + "  samples: {n: 4, batch: 100000000000}\n",
       {"{dir}/e.yaml:4", "base.samples.batch", "100000000000", "beyond"});
  yaml("a misspelled timing key", kYamlHead + "  timing: {repeat: 3}\n", {"{dir}/e.yaml", "repeat", "repeats"});
  yaml("include of a device, not a file", "experiment: bad\ninclude: /dev/zero\n", {"/dev/zero", "regular file"});
  yaml("include of a directory", "experiment: bad\ninclude: .\n", {"regular file"});
  // pytorch-fid statistics (.npz), through `fid A.npz B.npz`.
  auto npz = [&](const std::string& defect, const std::string& bytes, std::vector<std::string> needles) {
    t.push_back({"statistics (.npz)", defect,
                 [bytes](const std::string& dir) {
                   write(dir + "/s.npz", bytes);
                   fs::copy_file("weights/fmnist/test_stats.npz", dir + "/good.npz");
                 },
                 "fid {dir}/s.npz {dir}/good.npz", std::move(needles)});
  };
  npz("empty file", "", {"{dir}/s.npz"});
  npz("not a zip", "hello, this is text\n", {"{dir}/s.npz"});
  npz("zip cut short", [] {
    std::ifstream in("weights/fmnist/test_stats.npz", std::ios::binary);
    std::string b((std::istreambuf_iterator<char>(in)), {});
    return b.substr(0, b.size() / 2);
  }(), {"{dir}/s.npz"});
  auto npz_members = [&](const std::string& defect, std::vector<std::pair<std::string, std::string>> members,
                         std::vector<std::string> needles) {
    t.push_back({"statistics (.npz)", defect,
                 [members](const std::string& dir) {
                   write(dir + "/s.npz", zip_of(members, dir + "/scratch.zip"));
                   fs::copy_file("weights/fmnist/test_stats.npz", dir + "/good.npz");
                 },
                 "fid {dir}/s.npz {dir}/good.npz", std::move(needles)});
  };
  const std::string mu = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0'));
  const std::string sigma = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", std::string(32, '\0'));
  npz_members("array claiming 2^32 elements", {{"mu.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296,), }", std::string(16, '\0'))}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "'mu'", "needs 34359738368 bytes"});
  npz_members("shape beyond 2^48 elements", {{"mu.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (16777216, 16777216, 2), }", "")}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "2^48"});
  npz_members("big-endian dtype", {{"mu.npy", npy("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0'))}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "unsupported dtype '>f8'"});
  npz_members("NaN in the shape", {{"mu.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (nan,), }", "")}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "'shape'"});
  npz_members("duplicate header key", {{"mu.npy", npy("{'descr': '<f8', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0'))}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "twice"});
  npz_members("member that is not .npy (wrong magic)", {{"mu.npy", "PK\x03\x04 not an array"}, {"sigma.npy", sigma}}, {"{dir}/s.npz", "bad magic"});
  npz_members("header length beyond the member", {{"mu.npy", std::string("\x93NUMPY\x01\x00\xff\xff{'descr'", 17)}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "'mu'"});
  npz_members("data shorter than the shape", {{"mu.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", std::string(9, '\0'))}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "needs 16 bytes"});
  npz_members("'sigma' missing", {{"mu.npy", mu}}, {"{dir}/s.npz", "'sigma'"});
  npz_members("mu and sigma of different sizes", {{"mu.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", std::string(24, '\0'))}, {"sigma.npy", sigma}},
              {"{dir}/s.npz", "do not fit"});
  // IDX (Fashion-MNIST), through `fmnist-stats --data`.
  auto idx_case = [&](const std::string& defect, std::function<void(const std::string&)> make, const std::string& needle) {
    t.push_back({"IDX dataset", defect,
                 [make](const std::string& dir) {
                   fs::create_directories(dir + "/fm");
                   write_gz(dir + "/fm/t10k-labels-idx1-ubyte.gz", idx({4}, 4));
                   make(dir + "/fm/t10k-images-idx3-ubyte");
                 },
                 "fmnist-stats --classifier weights/fmnist/classifier.safetensors --split test --data {dir}/fm --out {dir}/s.npz",
                 {"{dir}/fm/t10k-images-idx3-ubyte", needle}});
  };
  idx_case("wrong magic", [](const std::string& p) { write(p, "\x01\x02\x08\x03" + idx({4, 28, 28}, 4 * 784).substr(4)); }, "not an IDX file");
  idx_case("truncated", [](const std::string& p) { write(p, idx({4, 28, 28}, 100)); }, "truncated");
  idx_case("trailing bytes", [](const std::string& p) { write(p, idx({4, 28, 28}, 4 * 784 + 3)); }, "trailing bytes");
  idx_case("2^39 elements declared", [](const std::string& p) { write(p, idx({1u << 16, 1u << 16, 128}, 10)); }, "truncated");
  idx_case("gzip inflating past its header", [](const std::string& p) { write_gz(p + ".gz", idx({4, 28, 28}, 4 * 784 + (8 << 20))); },
           "trailing bytes");
  idx_case("damaged gzip", [](const std::string& p) { write(p + ".gz", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!", 18)); },
           "gzip");
  // Results files (HDF5), through `report`.
  t.push_back({"results (HDF5)", "not HDF5", [](const std::string& dir) { write(dir + "/r.h5", "not an HDF5 file at all\n"); },
               "report {dir}/r.h5", {"{dir}/r.h5"}});
  t.push_back({"results (HDF5)", "HDF5 of another schema", [](const std::string& dir) { fs::copy_file("weights/fmnist/ddpm_ema.train.h5", dir + "/r.h5"); },
               "report {dir}/r.h5", {"{dir}/r.h5"}});
  t.push_back({"results (HDF5)", "a newer results schema",
               [](const std::string& dir) {
                 auto f = dc::h5::create_file(dir + "/r.h5");
                 dc::h5::set_attr(f.id(), "schema", std::string("deepcache-bench results v2 (a later build)"));
                 dc::h5::create_group(f.id(), "runs");
               },
               "report {dir}/r.h5", {"{dir}/r.h5", "newer"}});
  t.push_back({"results (HDF5)", "`run --results` at another program's HDF5 file (never replaced)",
               [](const std::string& dir) {
                 fs::copy_file("weights/fmnist/ddpm_ema.train.h5", dir + "/r.h5");
                 write(dir + "/e.yaml", kYamlHead + "  sampler: {name: ddim, steps: 2}\n  samples: {n: 1, batch: 1}\n");
               },
               "run {dir}/e.yaml --results {dir}/r.h5", {"{dir}/r.h5", "not a deepcache-bench results file"}});
  t.push_back({"results (HDF5)", "held by another `run`",
               [](const std::string& dir) { write(dir + "/e.yaml", kYamlHead + "  sampler: {name: ddim, steps: 2}\n  samples: {n: 1, batch: 1}\n"); },
               "run {dir}/e.yaml --results {dir}/r.h5", {"{dir}/r.h5", "pid"},
               [](const std::string& dir) { return std::shared_ptr<void>(std::make_shared<dc::harness::WriterLock>(dir + "/r.h5", "run")); }});
  // `run` checks every input of every pending run before the first sample (harness/runner.cpp,
  // preflight): a bad file of the sweep's last run stops it at once, nothing written.
  const std::string two_runs = kYamlHead + "  sampler: {name: ddim, steps: 2}\n  samples: {n: 2, batch: 2}\nbaseline: false\nruns:\n  - {}\n";
  t.push_back({"run inputs (checked before the first sample)", "the last run's weights cut short",
               [two_runs](const std::string& dir) {
                 std::ifstream in("weights/fmnist/ddpm_ema.safetensors", std::ios::binary);
                 std::string b((std::istreambuf_iterator<char>(in)), {});
                 write(dir + "/w.safetensors", b.substr(0, b.size() / 3));
                 write(dir + "/e.yaml", two_runs + "  - {model.weights: " + dir + "/w.safetensors}\n");
               },
               "run {dir}/e.yaml --results {dir}/r.h5", {"{dir}/w.safetensors", "{dir}/e.yaml: run "}});
  t.push_back({"run inputs (checked before the first sample)", "the last run's weights of another model",
               [two_runs](const std::string& dir) {
                 write(dir + "/e.yaml", two_runs + "  - {model.weights: weights/fmnist/classifier.safetensors}\n");
               },
               "run {dir}/e.yaml --results {dir}/r.h5", {"weights/fmnist/classifier.safetensors", "{dir}/e.yaml: run "}});
  t.push_back({"run inputs (checked before the first sample)", "the last run's metric reference is not an .npz",
               [two_runs](const std::string& dir) {
                 write(dir + "/s.npz", "mu,sigma\n1,2\n");
                 write(dir + "/e.yaml", two_runs + "  - {metrics.fid_fmnist: {classifier: weights/fmnist/classifier.safetensors, reference: " +
                                            dir + "/s.npz}}\n");
               },
               "run {dir}/e.yaml --results {dir}/r.h5", {"{dir}/s.npz", "{dir}/e.yaml: run "}});
  t.push_back({"results (HDF5)", "truncated", [](const std::string& dir) {
                 std::ifstream in("weights/fmnist/ddpm_ema.train.h5", std::ios::binary);
                 std::string b((std::istreambuf_iterator<char>(in)), {});
                 write(dir + "/r.h5", b.substr(0, 2048));
               },
               "report {dir}/r.h5", {"{dir}/r.h5"}});
  // Images (PNG folders), through `fid-stats`.
  t.push_back({"images (PNG folder)", "a file that is not a PNG", [](const std::string& dir) { write(dir + "/imgs/0.png", "GIF89a not a png"); },
               "fid-stats {dir}/imgs --out {dir}/s.npz --inception-weights {dir}/none.safetensors", {"{dir}/imgs/0.png", "not a PNG"}});
  t.push_back({"images (PNG folder)", "a JPEG among the PNGs", [](const std::string& dir) {
                 one_png(dir + "/imgs");
                 write(dir + "/imgs/1.jpg", "\xff\xd8\xff\xe0 jpeg");
               },
               "fid-stats {dir}/imgs --out {dir}/s.npz --inception-weights {dir}/none.safetensors", {"{dir}/imgs/1.jpg", "only PNG"}});
  t.push_back({"images (PNG folder)", "empty folder", [](const std::string& dir) { fs::create_directories(dir + "/imgs"); },
               "fid-stats {dir}/imgs --out {dir}/s.npz --inception-weights {dir}/none.safetensors", {"{dir}/imgs"}});
  auto png_head = [&](const std::string& defect, uint32_t w, uint32_t h, int depth, int colour, std::vector<std::string> needles) {
    t.push_back({"images (PNG folder)", defect,
                 [=](const std::string& dir) {
                   one_png(dir + "/imgs");
                   std::string b("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
                   for (uint32_t v : {w, h})
                     for (int k = 3; k >= 0; --k) b += static_cast<char>((v >> (8 * k)) & 0xff);
                   b += std::string{static_cast<char>(depth), static_cast<char>(colour), 0, 0, 0};
                   write(dir + "/imgs/1.png", b + std::string(4, '\0'));  // the CRC is libpng's business, later
                 },
                 "fid-stats {dir}/imgs --out {dir}/s.npz --inception-weights {dir}/none.safetensors", std::move(needles)});
  };
  png_head("2^31 x 2^31 pixels declared", 0x7fffffffu, 0x7fffffffu, 8, 2, {"{dir}/imgs/1.png", "pixels"});
  png_head("zero width", 0, 16, 8, 2, {"{dir}/imgs/1.png", "pixels"});
  png_head("bit depth 7", 16, 16, 7, 2, {"{dir}/imgs/1.png", "bit depth 7"});
  t.push_back({"images (PNG folder)", "signature only (no IHDR)", [](const std::string& dir) {
                 one_png(dir + "/imgs");
                 write(dir + "/imgs/1.png", std::string("\x89PNG\r\n\x1a\n", 8));
               },
               "fid-stats {dir}/imgs --out {dir}/s.npz --inception-weights {dir}/none.safetensors", {"{dir}/imgs/1.png", "IHDR"}});
  // Prompt files, through `clip-score`.
  auto prompts = [&](const std::string& defect, const std::string& text, std::vector<std::string> needles) {
    t.push_back({"prompt file", defect,
                 [text](const std::string& dir) {
                   write(dir + "/p.txt", text);
                   one_png(dir + "/imgs");
                 },
                 "clip-score --images {dir}/imgs --prompts {dir}/p.txt --weights {dir}/none.safetensors --tokenizer tests/fixtures/clip/tokenizer",
                 std::move(needles)});
  };
  prompts("empty line", "a cat\n\na dog\n", {"{dir}/p.txt:2"});
  prompts("invalid UTF-8", "a cat\nna\xc3\x28ve\n", {"{dir}/p.txt:2", "UTF-8"});
  prompts("NUL byte", std::string("a cat\nx\0y\n", 10), {"{dir}/p.txt:2"});
  prompts("empty file", "", {"{dir}/p.txt"});
  // Tokenizer folders, through `clip-score --tokenizer` (read before any image or weight).
  auto tok = [&](const std::string& defect, const std::string& vocab, const std::string& merges, std::vector<std::string> needles) {
    t.push_back({"tokenizer (vocab.json, merges.txt)", defect,
                 [vocab, merges](const std::string& dir) {
                   if (vocab.empty()) {
                     fs::create_directories(dir + "/tok");
                     fs::copy_file("tests/fixtures/clip/tokenizer/vocab.json", dir + "/tok/vocab.json");
                   } else {
                     write(dir + "/tok/vocab.json", vocab);
                   }
                   write(dir + "/tok/merges.txt", merges);
                   write(dir + "/p.txt", "a cat\n");
                   one_png(dir + "/imgs");
                 },
                 "clip-score --images {dir}/imgs --prompts {dir}/p.txt --weights {dir}/none.safetensors --tokenizer {dir}/tok",
                 std::move(needles)});
  };
  tok("vocab not JSON", "{\"a\": ", "#version: 0.2\n", {"{dir}/tok/vocab.json"});
  tok("merge line of three parts", "", "#version: 0.2\na b c\n", {"{dir}/tok/merges.txt"});  // "": the real vocab.json
  tok("id that is not an integer", "{\"a\": \"zero\"}", "#version: 0.2\n", {"{dir}/tok/vocab.json"});
  return t;
}

}  // namespace

TEST(BadInputs, EveryOneIsExitCode2AndOneLineNamingTheFile) {
  std::ostringstream md;
  md << "| format | defect | command | exit | message |\n|---|---|---|---|---|\n";
  int n = 0;
  for (const auto& b : table()) {
    SCOPED_TRACE(b.format + ": " + b.defect);
    const std::string dir = dc::test::temp_dir();
    b.make(dir);
    const std::shared_ptr<void> held = b.hold ? b.hold(dir) : nullptr;
    const auto r = dc::test::run_cli(replace_dir(b.args, dir));
    std::string line;
    for (std::istringstream in(r.err); std::getline(in, line);)
      if (line.find("error:") != std::string::npos) break;
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    EXPECT_EQ(dc::first_invalid_utf8(r.err), std::string::npos) << "stderr must be printable UTF-8 (users' bytes as \\xNN)";
    EXPECT_NE(line.find("error:"), std::string::npos) << "no error line: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n') - (r.err.find("warning:") != std::string::npos ? 1 : 0), 1)
        << "one line: " << r.err;
    for (const auto& needle : b.needles) EXPECT_NE(line.find(replace_dir(needle, dir)), std::string::npos) << needle << " in: " << line;
    std::string shown = line;
    for (auto p = shown.find(dir); p != std::string::npos; p = shown.find(dir)) shown.replace(p, dir.size(), "DIR");
    for (auto p = shown.find('|'); p != std::string::npos; p = shown.find('|', p + 2)) shown.replace(p, 1, "\\|");
    std::string cmd = replace_dir(b.args, "DIR");
    if (cmd.size() > 90) cmd = cmd.substr(0, 87) + "...";
    md << "| " << b.format << " | " << b.defect << " | `" << cmd << "` | " << r.code << " | " << shown.substr(0, 300) << " |\n";
    ++n;
  }
  RecordProperty("bad_inputs", n);
  if (const char* out = std::getenv("DC_BAD_INPUT_TABLE")) std::ofstream(out) << md.str() << "\n" << n << " bad inputs.\n";
}

TEST(Strings, PrintableEscapesInvalidUtf8AndControlCharacters) {
  EXPECT_EQ(dc::printable("plain text, caf\xc3\xa9 \xe2\x80\x99s \xf0\x9f\x98\x80\nline 2\tx"),
            "plain text, caf\xc3\xa9 \xe2\x80\x99s \xf0\x9f\x98\x80\nline 2\tx");
  EXPECT_EQ(dc::printable("al\xff\xfepha"), "al\\xff\\xfepha");
  EXPECT_EQ(dc::printable(std::string("a\0b\x1b[31m", 8)), "a\\x00b\\x1b[31m");
  EXPECT_EQ(dc::printable("\xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80"), "\\xc0\\x80 \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80")
      << "overlong, surrogate and above U+10FFFF are not UTF-8";
  EXPECT_EQ(dc::printable("\xe2\x80"), "\\xe2\\x80") << "a truncated sequence at the end";
}
