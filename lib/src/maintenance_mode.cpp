// Maintenance-mode property strings, following proxmox-schema's PropertyIterator (next_property,
// parse_quoted_string) and its serializer's quoting rule.
#include "pbs_patch/maintenance_mode.hpp"

#include "pbs_patch/text.hpp"

#include <map>

namespace pbs_patch {

namespace {

struct Property {
    std::optional<std::string> key;
    std::string value;
};

// A quoted value: `"` ... `"` with the escapes `\"`, `\\` and `\n` (nothing else). Moves `data` past it.
std::optional<std::string> parse_quoted(std::string_view& data) {
    std::string out;
    std::size_t i = 1;
    bool backslash = false;
    for (; i < data.size(); ++i) {
        const char c = data[i];
        if (backslash) {
            if (c == '"') out += '"';
            else if (c == '\\') out += '\\';
            else if (c == 'n') out += '\n';
            else return std::nullopt;  // unsupported escape sequence
            backslash = false;
        } else if (c == '\\') {
            backslash = true;
        } else if (c == '"') {
            data.remove_prefix(i + 1);
            return out;
        } else {
            out += c;
        }
    }
    return std::nullopt;  // unexpected end of string
}

// One `key=value`, `value` or `"quoted"` entry; nullopt on a syntax error. Moves `data` to the next one.
std::optional<Property> next_property(std::string_view& data) {
    Property p;
    if (data.front() != '"') {
        const auto pos = data.find_first_of(",=");
        if (pos != std::string_view::npos && data[pos] == '=') {
            p.key = std::string(data.substr(0, pos));
            data.remove_prefix(pos + 1);
        }
        if (data.empty() || data.front() != '"') {
            const auto comma = data.find(',');
            p.value = std::string(data.substr(0, comma));
            data.remove_prefix(comma == std::string_view::npos ? data.size() : comma + 1);
            return p;
        }
    }
    auto value = parse_quoted(data);
    if (!value) return std::nullopt;
    p.value = std::move(*value);
    if (!data.empty()) {
        if (data.front() != ',') return std::nullopt;  // garbage after quoted string
        data.remove_prefix(1);
    }
    return p;
}

bool valid_type(const std::string& type) {
    if (type.empty()) return false;
    for (char c : type) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

}  // namespace

std::optional<MaintenanceMode> parse_maintenance_mode(std::string_view text) {
    std::map<std::string, std::string> seen;
    while (!text.empty()) {
        auto p = next_property(text);
        if (!p) return std::nullopt;
        const std::string key = p->key.value_or("type");  // `type` is the default key
        if (key != "type" && key != "message") return std::nullopt;
        if (!seen.emplace(key, std::move(p->value)).second) return std::nullopt;  // duplicate field
    }
    const auto type = seen.find("type");
    if (type == seen.end() || !valid_type(type->second)) return std::nullopt;
    MaintenanceMode mode{type->second, std::nullopt};
    if (const auto message = seen.find("message"); message != seen.end()) mode.message = message->second;
    return mode;
}

bool blocks_writes(const MaintenanceMode& mode) { return !mode.type.empty(); }

bool blocks_reads(const MaintenanceMode& mode) { return mode.type != "read-only"; }

std::string sanitize_maintenance_message(std::string_view message, bool* changed) {
    std::string out;
    bool altered = false;
    for (char ch : message) {
        const auto c = static_cast<unsigned char>(ch);
        const bool bad = c < 0x20 || c == 0x7f || c == ',' || c == '"' || c == '\\' || c == '%';
        out += bad ? ' ' : ch;
        altered = altered || bad;
    }
    std::string trimmed = trim(out);
    altered = altered || trimmed.size() != out.size();
    if (trimmed.size() > 64) {  // 64 bytes is at most 64 characters, PBS's limit
        std::size_t cut = 64;
        // never cut a UTF-8 sequence in half: back to the start of the code point at the cut
        while (cut > 0 && (static_cast<unsigned char>(trimmed[cut]) & 0xC0) == 0x80) --cut;
        trimmed = trim(std::string_view(trimmed).substr(0, cut));
        altered = true;
    }
    if (changed) *changed = altered;
    return trimmed;
}

std::string maintenance_mode_argument(const std::string& type, const std::string& message) {
    if (message.empty()) return "type=" + type;
    return "type=" + type + ",message=\"" + message + "\"";
}

std::string format_maintenance_mode(const MaintenanceMode& mode) {
    std::string out = mode.type;
    if (!mode.message) return out;
    const auto& m = *mode.message;
    out += ",message=";
    if (m.find_first_of("\"\\\n") == std::string::npos) return out + m;
    out += '"';
    for (char c : m) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out + '"';
}

bool same_maintenance(const MaintenanceMode& a, const MaintenanceMode& b) {
    return a.type == b.type && a.message.value_or("") == b.message.value_or("");
}

}  // namespace pbs_patch
