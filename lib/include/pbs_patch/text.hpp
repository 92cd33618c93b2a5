// Small pure text helpers shared by the parsers.
#pragma once

#include <cstdint>
#include <optional>
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
// Hex digits only (either case), between min_digits and max_digits of them (max_digits <= 16: no overflow);
// otherwise nullopt. The fields of a UPID, an escaped byte.
std::optional<std::uint64_t> parse_hex(std::string_view text, std::size_t min_digits, std::size_t max_digits);
// Reads a whole file; throws std::runtime_error naming the path and the OS error.
std::string read_file(const std::string& path);

}  // namespace pbs_patch
