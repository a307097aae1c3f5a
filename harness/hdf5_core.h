// A small RAII layer over the HDF5 C API without LibTorch (harness/hdf5.h adds tensors): files,
// groups, string and numeric attributes, datasets read as typed byte arrays. Errors are dc::Error
// naming file and path. Files are checked before libhdf5 (1.10, whose parser has crashed on crafted
// files: docs/reliability.md) sees them, and a dataset's declared size is checked against what
// the file stores before anything is allocated. Fuzzed by fuzz/fuzz_hdf5.cpp.
#pragma once
#include <hdf5.h>

#include <cstdint>
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

// Checks the file's HDF5 superblock before libhdf5 opens it: the signature (at byte 0, 512, 1024,
// ...), a superblock version libhdf5 1.10 reads (0-3), offset and length sizes of 2, 4 or 8 bytes,
// and an end-of-file address within the file (a truncated copy). dc::Error naming the file.
void check_file(const std::string& path);
// The superblock's version (after check_file): 0 or 1 for the HDF5 1.6 format, whose metadata has
// no checksums; 2 or 3 for the 1.8 and 1.10 formats, which create_file writes.
int superblock_version(const std::string& path);

Handle create_file(const std::string& path);       // truncates
Handle open_file(const std::string& path, bool write = false);  // check_file first
// An HDF5 file held in memory (the core driver without a backing store): libhdf5 never writes to
// the disk, so a full disk or an I/O error cannot reach it (libhdf5 1.10 crashed with a segmentation
// fault on a failed write: issue 32). Its bytes (file_image) are written with
// write_file_atomically (common/atomic_file.h), every step checked. `size_hint`: the bytes expected.
Handle create_memory_file(const std::string& name, std::size_t size_hint);
// The file's bytes, flushed first; `name` for messages.
std::string file_image(hid_t f, const std::string& name);
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
bool exists(hid_t parent, const std::string& path);
std::vector<std::string> children(hid_t group);

// A dataset's elements as stored (native byte order), of the types the harness writes.
enum class ElementType { u8, i32, i64, f16, f32, f64 };
std::size_t element_size(ElementType t);
struct Array {
  ElementType type = ElementType::f64;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;  // product(shape) * element_size(type)
  int64_t numel() const;
};
// Reads a dataset: integer (1, 4 or 8 bytes) or float (2, 4 or 8 bytes) elements, rank <= 8.
// Refused before allocating: other classes or sizes, and a declared size beyond what the file can
// hold (its stored bytes, times deflate's largest ratio when the dataset is compressed).
Array read_array(hid_t parent, const std::string& name);
// A dataset of exactly one element, as a double.
double read_scalar(hid_t parent, const std::string& name);
// Every element as a double (float16 converted as NumPy does).
std::vector<double> to_doubles(const Array& a);
// A dataset's shape, without reading it.
std::vector<int64_t> dataset_shape(hid_t parent, const std::string& name);

// Elements to write, not owned: `data` holds product(shape) elements of `type`, contiguous.
struct ArrayRef {
  ElementType type = ElementType::f64;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};
// Writes a dataset; `compress` chunks along the first dimension and gzips.
void write_array(hid_t parent, const std::string& name, const ArrayRef& a, bool compress = false);
void write_scalar(hid_t parent, const std::string& name, double v);
// A vector as a one-dimensional dataset of `type` (values converted as static_cast does).
template <typename T>
void write_values(hid_t parent, const std::string& name, const std::vector<T>& v, ElementType type);

void set_attr(hid_t obj, const std::string& name, const std::string& value);
void set_attr(hid_t obj, const std::string& name, double value);
void set_attr(hid_t obj, const std::string& name, int64_t value);
std::string get_attr_string(hid_t obj, const std::string& name, const std::string& fallback = "");
double get_attr_double(hid_t obj, const std::string& name, double fallback = 0.0);
bool has_attr(hid_t obj, const std::string& name);

// Deep copy of `src_path` (a group) from one open file into another.
void copy_object(hid_t src_file, const std::string& src_path, hid_t dst_file, const std::string& dst_path);

// Silences HDF5's own error printing (we report errors ourselves).
void quiet();

// "file:/path/in/file" of an open object, for messages.
std::string object_name(hid_t obj);

// The HDF5 type of a stored element type (float16 as h5py builds it).
hid_t type_of(ElementType t);

}  // namespace dc::h5
