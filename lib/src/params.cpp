// Parameter validation: converts Ansible's loosely typed values (Semaphore sends strings) to the
// spec'd types and refuses anything it cannot convert, naming the parameter.
#include "pbs_patch/params.hpp"

#include "pbs_patch/json_number.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace pbs_patch {
namespace {

using nlohmann::json;

std::string describe(const json& value) {
    std::string dumped = value.dump();
    if (dumped.size() > 80) dumped = dumped.substr(0, 77) + "...";
    return fmt::format("{} ({})", dumped, value.type_name());
}

[[noreturn]] void bad_type(const ParamSpec& p, const json& value) {
    throw ParamError(fmt::format("argument '{}' is of type {} and we were unable to convert to {}: got {}",
                                 p.name, value.type_name(), to_string(p.type), describe(value)));
}

json convert_int(const ParamSpec& p, const json& value) {
    long long n = 0;
    if (value.is_number()) {
        const auto checked = json_integer(value);  // 2^64-1 must not wrap to -1
        if (!checked) bad_type(p, value);
        n = *checked;
    } else if (value.is_string()) {
        const std::string text = trim(value.get<std::string>());
        std::size_t used = 0;
        try {
            n = std::stoll(text, &used, 10);
        } catch (const std::exception&) {
            bad_type(p, value);
        }
        if (used != text.size() || text.empty()) bad_type(p, value);
    } else {
        bad_type(p, value);
    }
    if (p.min_value && n < *p.min_value) {
        throw ParamError(fmt::format("argument '{}' must be >= {}: got {}", p.name, *p.min_value, n));
    }
    return n;
}

json convert_bool(const ParamSpec& p, const json& value) {
    if (value.is_boolean()) return value;
    if (const auto n = json_integer(value, 0, 1)) return *n == 1;
    if (value.is_string()) {
        if (auto b = parse_ansible_bool(value.get<std::string>())) return *b;
    }
    throw ParamError(fmt::format(
        "argument '{}' is of type {} and we were unable to convert to bool: got {}; "
        "use true/false, yes/no, on/off, 1/0, y/n or t/f",
        p.name, value.type_name(), describe(value)));
}

json convert_str(const ParamSpec& p, const json& value) {
    if (value.is_string()) return value;
    if (value.is_number() || value.is_boolean()) return value.dump();
    bad_type(p, value);
}

// A dict, or a string holding a JSON object (what a templated value can turn into).
std::optional<json> as_object(const json& value) {
    if (value.is_object()) return value;
    if (value.is_string()) {
        const std::string text = trim(value.get<std::string>());
        if (!text.empty() && text.front() == '{') {
            try {
                json parsed = json::parse(text);
                if (parsed.is_object()) return parsed;
            } catch (const json::parse_error&) {
            }
        }
    }
    return std::nullopt;
}

json convert_dict(const ParamSpec& p, const json& value) {
    if (auto object = as_object(value)) return *object;
    bad_type(p, value);
}

json convert_dict_list(const ParamSpec& p, const json& value) {
    json list = value;
    if (value.is_string()) {
        try {
            list = json::parse(value.get<std::string>());
        } catch (const json::parse_error&) {
            bad_type(p, value);
        }
    } else if (value.is_object()) {
        list = json::array({value});  // Ansible wraps a single element
    }
    if (!list.is_array()) bad_type(p, value);
    json out = json::array();
    for (const auto& element : list) {
        auto object = as_object(element);
        if (!object) {
            throw ParamError(fmt::format("argument '{}' must be a list of dicts: element {} is a {}", p.name,
                                         describe(element), element.type_name()));
        }
        out.push_back(std::move(*object));
    }
    return out;
}

json convert_list(const ParamSpec& p, const json& value) {
    if (p.elements == ParamType::Dict) return convert_dict_list(p, value);
    json out = json::array();
    if (value.is_string()) {
        // Ansible splits a comma-separated string into a list.
        std::string item;
        for (char c : value.get<std::string>() + ",") {
            if (c == ',') {
                item = trim(item);
                if (!item.empty()) out.push_back(item);
                item.clear();
            } else {
                item += c;
            }
        }
        return out;
    }
    if (!value.is_array()) bad_type(p, value);
    for (const auto& element : value) {
        if (element.is_string()) {
            out.push_back(element);
        } else if (element.is_number() || element.is_boolean()) {
            out.push_back(element.dump());
        } else {
            throw ParamError(fmt::format("argument '{}' must be a list of strings: element {} is a {}", p.name,
                                         element.dump(), element.type_name()));
        }
    }
    return out;
}

json convert_path(const ParamSpec& p, const json& value) {
    if (!value.is_string()) bad_type(p, value);
    std::string path = value.get<std::string>();
    if (path.empty()) throw ParamError(fmt::format("argument '{}' must be a non-empty path", p.name));
    if (path.find('\0') != std::string::npos) throw ParamError(fmt::format("argument '{}' contains a NUL byte", p.name));
    return path;
}

json convert(const ParamSpec& p, const json& value) {
    switch (p.type) {
        case ParamType::Str: return convert_str(p, value);
        case ParamType::Int: return convert_int(p, value);
        case ParamType::Bool: return convert_bool(p, value);
        case ParamType::List: return convert_list(p, value);
        case ParamType::Path: return convert_path(p, value);
        case ParamType::Dict: return convert_dict(p, value);
    }
    bad_type(p, value);
}

bool flag(const json& raw, const char* key, bool fallback) {
    const auto it = raw.find(key);
    if (it == raw.end() || it->is_null()) return fallback;
    if (it->is_boolean()) return it->get<bool>();
    if (it->is_string()) return parse_ansible_bool(it->get<std::string>()).value_or(fallback);
    if (const auto n = json_integer(*it)) return *n != 0;
    return fallback;
}

}  // namespace

std::string to_string(ParamType type) {
    switch (type) {
        case ParamType::Str: return "str";
        case ParamType::Int: return "int";
        case ParamType::Bool: return "bool";
        case ParamType::List: return "list";
        case ParamType::Path: return "path";
        case ParamType::Dict: return "dict";
    }
    return "unknown";
}

std::optional<bool> parse_ansible_bool(const std::string& text) {
    std::string lower = trim(text);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    static const char* const truthy[] = {"yes", "on", "1", "true", "t", "y"};
    static const char* const falsy[] = {"no", "off", "0", "false", "f", "n"};
    for (const char* t : truthy)
        if (lower == t) return true;
    for (const char* f : falsy)
        if (lower == f) return false;
    return std::nullopt;
}

ValidatedArgs validate_params(const nlohmann::json& raw, const ParamSpecs& spec) {
    if (!raw.is_object()) {
        throw ParamError(fmt::format("module arguments must be a JSON object, got {}", raw.type_name()));
    }
    ValidatedArgs out;
    out.flags.check_mode = flag(raw, "_ansible_check_mode", false);
    out.flags.diff = flag(raw, "_ansible_diff", false);
    out.flags.no_log = flag(raw, "_ansible_no_log", false);
    if (auto it = raw.find("_ansible_verbosity"); it != raw.end()) {
        if (const auto v = json_integer(*it, 0, 100)) out.flags.verbosity = static_cast<int>(*v);
    }

    std::vector<std::string> unknown;
    for (const auto& [key, value] : raw.items()) {
        if (starts_with(key, "_ansible_")) continue;  // Ansible's own, including future ones
        const bool known = std::any_of(spec.begin(), spec.end(), [&](const ParamSpec& p) { return p.name == key; });
        if (!known) unknown.push_back(key);
    }
    if (!unknown.empty()) {
        std::vector<std::string> accepted;
        for (const auto& p : spec) accepted.push_back(p.name);
        std::sort(unknown.begin(), unknown.end());
        std::sort(accepted.begin(), accepted.end());
        throw ParamError(fmt::format("Unsupported parameters: {}. Supported parameters include: {}",
                                     join(unknown, ", "), join(accepted, ", ")));
    }

    for (const auto& p : spec) {
        const auto it = raw.find(p.name);
        const bool given = it != raw.end() && !it->is_null();
        if (!given) {
            if (p.required) throw ParamError(fmt::format("missing required argument: {}", p.name));
            out.params[p.name] = p.default_value.is_null() ? json(nullptr) : convert(p, p.default_value);
            continue;
        }
        json value = convert(p, *it);
        if (!p.choices.empty()) {
            const std::string as_text = value.is_string() ? value.get<std::string>() : value.dump();
            if (std::find(p.choices.begin(), p.choices.end(), as_text) == p.choices.end()) {
                throw ParamError(fmt::format("value of {} must be one of: {}, got: {}", p.name, join(p.choices, ", "),
                                             as_text));
            }
        }
        out.params[p.name] = std::move(value);
    }
    return out;
}

nlohmann::json spec_to_json(const ParamSpecs& spec) {
    json out = json::object();
    for (const auto& p : spec) {
        json entry{{"type", to_string(p.type)}, {"required", p.required}, {"no_log", p.no_log}};
        entry["default"] = p.default_value.is_null() ? json(nullptr) : convert(p, p.default_value);
        if (!p.choices.empty()) entry["choices"] = p.choices;
        if (p.type == ParamType::List) entry["elements"] = to_string(p.elements);
        out[p.name] = entry;
    }
    return out;
}

nlohmann::json masked_invocation(const nlohmann::json& params, const ParamSpecs& spec) {
    json args = params;
    for (const auto& p : spec) {
        if (p.no_log && args.contains(p.name) && !args[p.name].is_null()) {
            args[p.name] = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";
        }
    }
    return json{{"module_args", args}};
}

}  // namespace pbs_patch
