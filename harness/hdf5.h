// A small RAII layer over the HDF5 C API: files, groups, datasets from tensors (optionally chunked
// and gzip-compressed), string and numeric attributes. Errors are dc::Error naming file and path.
#pragma once
#include <torch/torch.h>

#include <hdf5.h>

#include <string>
#include <vector>

namespace dc::h5 {

class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

Handle create_file(const std::string& path);       // truncates
Handle open_file(const std::string& path, bool write = false);
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
bool exists(hid_t parent, const std::string& path);
std::vector<std::string> children(hid_t group);

// Writes a CPU tensor (float32/64, int32/64, uint8) as a dataset; `compress` chunks along the
// first dimension and gzips.
void write_tensor(hid_t parent, const std::string& name, const torch::Tensor& t, bool compress = false);
torch::Tensor read_tensor(hid_t parent, const std::string& name);
void write_scalar(hid_t parent, const std::string& name, double v);
double read_scalar(hid_t parent, const std::string& name);

void set_attr(hid_t obj, const std::string& name, const std::string& value);
void set_attr(hid_t obj, const std::string& name, double value);
void set_attr(hid_t obj, const std::string& name, int64_t value);
std::string get_attr_string(hid_t obj, const std::string& name, const std::string& fallback = "");
double get_attr_double(hid_t obj, const std::string& name, double fallback = 0.0);

// Deep copy of `src_path` (a group) from one open file into another.
void copy_object(hid_t src_file, const std::string& src_path, hid_t dst_file, const std::string& dst_path);

// Silences HDF5's own error printing (we report errors ourselves).
void quiet();

}  // namespace dc::h5
