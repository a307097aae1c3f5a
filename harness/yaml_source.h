// An experiment's (or a training run's) YAML as JSON with the line of every dotted key path
// (harness/config_reader.h's Source), so the strict Reader's errors name the file, line and key.
// Text that is not UTF-8, duplicate keys and invalid YAML are located errors.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "harness/config_reader.h"

namespace dc::harness {

// The YAML text as JSON; fills src.lines ("base.cache.k" -> line). Scalars: quoted ones are
// strings; ~/null, true/false, integers and numbers as YAML 1.2's core schema reads them.
nlohmann::json load_yaml(const std::string& text, Source& src);

// A file's text for `what` ("experiment", "included config block"): a regular file of at most
// 16 MiB (an include of /dev/zero or a folder must not read forever); dc::Error otherwise.
std::string read_text(const std::string& path, const std::string& what);

}  // namespace dc::harness
