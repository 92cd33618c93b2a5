// The message validate_params gives for `raw` under `spec`, or "" when it accepts them.
#pragma once

#include "pbs_patch/params.hpp"

#include <string>

inline std::string param_error(const nlohmann::json& raw, const pbs_patch::ParamSpecs& spec) {
    try {
        pbs_patch::validate_params(raw, spec);
    } catch (const pbs_patch::ParamError& e) {
        return e.what();
    }
    return "";
}
