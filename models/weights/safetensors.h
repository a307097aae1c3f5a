// safetensors reader (memory-mapped, validating) and writer. Torch-free: see tensor_io.h for the
// conversion to torch::Tensor.
//
// Format (https://github.com/huggingface/safetensors, README "Format"):
//   8 bytes  little-endian u64 N = header size
//   N bytes  UTF-8 JSON object: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
//            ..., optional "__metadata__": {str: str}}
//   rest     the data section; offsets are relative to its start.
// Like the reference implementation we require the tensors to cover the data section exactly
// (no overlap, no hole, no trailing bytes), and the byte count of each tensor to equal
// numel * itemsize. Every violation is a dc::Error naming the file and the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dc::st {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "F32", ...
// torch-style name: "float32", "float16", "bfloat16", "int64", "bool", ...
const char* dtype_long_name(DType dtype);
std::optional<DType> parse_dtype(std::string_view name);
bool dtype_is_floating(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets relative to the data section
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[2, 3, 16, 16]"

class MappedFile;

class SafetensorsFile {
 public:
  // Opens and validates the whole header. Throws dc::Error on any problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  uint64_t file_size() const;
  uint64_t header_size() const { return header_size_; }
  // Tensors in the order of their data offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has_metadata() const { return has_metadata_; }
  const TensorInfo* find(std::string_view name) const;
  // Throws dc::Error naming the file and the tensor when absent.
  const TensorInfo& at(std::string_view name) const;
  // Raw little-endian bytes of a tensor (not aligned in general).
  const uint8_t* data(const TensorInfo& info) const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> map_;
  uint64_t header_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
  bool has_metadata_ = false;
};

// One tensor to write: the bytes must be dtype-sized little-endian values, numel*itemsize long.
struct TensorBytes {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::size_t nbytes = 0;
};

// Writes atomically (temporary file in the same folder, fsync, rename). Tensors are laid out in
// name order; the header is padded with spaces to a multiple of 8 bytes. Throws dc::Error.
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dc::st
