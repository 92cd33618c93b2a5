// Typed parameter spec and validation for Ansible binary modules: strict with user keys,
// lenient with Ansible's own `_ansible_*` keys.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pbs_patch {

enum class ParamType { Str, Int, Bool, List, Path, Dict };

std::string to_string(ParamType type);

struct ParamSpec {
    std::string name;
    ParamType type = ParamType::Str;
    bool required = false;
    nlohmann::json default_value = nullptr;  // null = no default
    std::vector<std::string> choices = {};
    bool no_log = false;
    std::optional<long long> min_value = std::nullopt;  // ints only
    // Lists only: the type of each element (Str or Dict; Ansible's `elements`).
    ParamType elements = ParamType::Str;
};

using ParamSpecs = std::vector<ParamSpec>;

// A user error in the module arguments; the message is meant for the operator.
struct ParamError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Ansible's truthy/falsy strings; nullopt when the text is neither.
std::optional<bool> parse_ansible_bool(const std::string& text);

// What Ansible itself sends alongside the user's arguments.
struct AnsibleFlags {
    bool check_mode = false;
    bool diff = false;
    int verbosity = 0;
    bool no_log = false;
};

struct ValidatedArgs {
    nlohmann::json params = nlohmann::json::object();  // every spec'd name, converted, defaults filled
    AnsibleFlags flags;
};

// Validates raw module arguments against the spec. Throws ParamError naming the parameter,
// the expected type and what was given; unknown user keys are rejected naming the accepted ones.
ValidatedArgs validate_params(const nlohmann::json& raw, const ParamSpecs& spec);

// The spec as JSON (name -> type, required, default, choices, no_log; elements for lists), for the
// docs-vs-spec test.
nlohmann::json spec_to_json(const ParamSpecs& spec);

// The `invocation.module_args` Ansible shows: parameters with no_log values masked.
nlohmann::json masked_invocation(const nlohmann::json& params, const ParamSpecs& spec);

}  // namespace pbs_patch
