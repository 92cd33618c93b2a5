// Small pure text helpers shared by the parsers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

std::string trim(std::string_view text);
std::vector<std::string> split_lines(std::string_view text);
std::vector<std::string> split_ws(std::string_view text);
bool starts_with(std::string_view text, std::string_view prefix);
// The last max_lines lines of text (for reporting a command's output).
std::string tail_lines(std::string_view text, std::size_t max_lines);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// Reads a whole file; throws std::runtime_error naming the path and the OS error.
std::string read_file(const std::string& path);

}  // namespace pbs_patch
