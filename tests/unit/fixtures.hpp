// Access to the recorded samples in tests/unit/fixtures.
#pragma once

#include "pbs_patch/text.hpp"

#include <string>

inline std::string fixture(const std::string& name) { return pbs_patch::read_file(std::string(PBS_PATCH_FIXTURES) + "/" + name); }
