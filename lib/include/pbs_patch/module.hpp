// Ansible's binary-module protocol: argv[1] is a JSON args file; one JSON object on stdout.
#pragma once

#include "pbs_patch/params.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pbs_patch {

// Thrown by module logic to fail with a message and extra result keys.
struct ModuleFailure : std::runtime_error {
    nlohmann::json extra;
    explicit ModuleFailure(const std::string& msg, nlohmann::json extra_keys = nlohmann::json::object())
        : std::runtime_error(msg), extra(std::move(extra_keys)) {}
};

class Module {
public:
    Module(ValidatedArgs args, const ParamSpecs& spec);

    const nlohmann::json& params() const { return args_.params; }
    std::string str(const std::string& name) const;
    long long integer(const std::string& name) const;
    bool boolean(const std::string& name) const;
    std::vector<std::string> list(const std::string& name) const;

    bool check_mode() const { return args_.flags.check_mode; }
    bool diff_mode() const { return args_.flags.diff; }
    int verbosity() const { return args_.flags.verbosity; }

    void warn(std::string message) { warnings_.push_back(std::move(message)); }
    const std::vector<std::string>& warnings() const { return warnings_; }
    nlohmann::json invocation() const;

private:
    ValidatedArgs args_;
    const ParamSpecs& spec_;
    std::vector<std::string> warnings_;
};

using ModuleBody = std::function<nlohmann::json(Module&)>;

// Runs a module from main(): reads and validates the args file, calls body, completes the result
// (changed/failed/warnings/invocation) and prints it. Never throws; returns the process exit code.
// Any error, bad argument or exception becomes {"failed": true, "msg": ...}.
int run_module(int argc, char** argv, const ParamSpecs& spec, const ModuleBody& body);

// The same, for tests: args JSON text in, result JSON out.
nlohmann::json run_module_json(const std::string& args_text, const ParamSpecs& spec, const ModuleBody& body);

// Reads an args file; throws ParamError saying whether it is missing, unreadable or invalid JSON.
nlohmann::json read_args_file(const std::string& path);

}  // namespace pbs_patch
