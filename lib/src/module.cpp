// The binary-module protocol: args file in, exactly one JSON object out on stdout.
#include "pbs_patch/module.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>

namespace pbs_patch {

using nlohmann::json;

Module::Module(ValidatedArgs args, const ParamSpecs& spec) : args_(std::move(args)), spec_(spec) {}

std::string Module::str(const std::string& name) const {
    const auto& v = args_.params.at(name);
    return v.is_null() ? std::string{} : v.get<std::string>();
}

long long Module::integer(const std::string& name) const { return args_.params.at(name).get<long long>(); }

bool Module::boolean(const std::string& name) const { return args_.params.at(name).get<bool>(); }

std::vector<std::string> Module::list(const std::string& name) const {
    const auto& v = args_.params.at(name);
    return v.is_null() ? std::vector<std::string>{} : v.get<std::vector<std::string>>();
}

json Module::invocation() const { return masked_invocation(args_.params, spec_); }

json read_args_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw ParamError(fmt::format("args file {} is missing: {}", path, std::strerror(errno)));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ParamError(fmt::format("args file {} is unreadable: {}", path, std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    try {
        return json::parse(text.str());
    } catch (const json::parse_error& e) {
        throw ParamError(fmt::format("args file {} is not valid JSON: {}", path, e.what()));
    }
}

namespace {

json finish(json result, const Module* module) {
    if (!result.is_object()) result = json{{"result", result}};
    if (!result.contains("changed")) result["changed"] = false;
    if (!result.contains("failed")) result["failed"] = false;
    if (module) {
        auto warnings = result.value("warnings", json::array());
        for (const auto& w : module->warnings()) warnings.push_back(w);
        if (!warnings.empty()) result["warnings"] = warnings;
        result["invocation"] = module->invocation();
    }
    // Never return Ansible's internal keys.
    for (auto it = result.begin(); it != result.end();) {
        if (starts_with(it.key(), "_ansible_")) it = result.erase(it);
        else ++it;
    }
    return result;
}

json run_parsed(const json& raw, const ParamSpecs& spec, const ModuleBody& body) {
    std::unique_ptr<Module> module;
    try {
        module = std::make_unique<Module>(validate_params(raw, spec), spec);
        return finish(body(*module), module.get());
    } catch (const ModuleFailure& failure) {
        json result = failure.extra.is_object() ? failure.extra : json::object();
        result["failed"] = true;
        result["msg"] = failure.what();
        return finish(std::move(result), module.get());
    } catch (const ParamError& e) {
        return finish(json{{"failed", true}, {"msg", e.what()}}, nullptr);
    } catch (const std::exception& e) {
        return finish(json{{"failed", true}, {"msg", fmt::format("internal error: {}", e.what())}}, module.get());
    } catch (...) {
        return finish(json{{"failed", true}, {"msg", "internal error: unknown exception"}}, module.get());
    }
}

}  // namespace

json run_module_json(const std::string& args_text, const ParamSpecs& spec, const ModuleBody& body) {
    json raw;
    try {
        raw = json::parse(args_text);
    } catch (const json::parse_error& e) {
        return finish(json{{"failed", true}, {"msg", fmt::format("module arguments are not valid JSON: {}", e.what())}},
                      nullptr);
    }
    return run_parsed(raw, spec, body);
}

int run_module(int argc, char** argv, const ParamSpecs& spec, const ModuleBody& body) {
    json result;
    try {
        if (argc < 2) {
            result = finish(json{{"failed", true},
                                 {"msg", "no args file: an Ansible binary module is run as <module> <args-file>"}},
                            nullptr);
        } else if (std::string(argv[1]) == "--param-spec") {
            // Not an Ansible call (Ansible always passes a file path): the spec, for tests and docs.
            std::cout << spec_to_json(spec).dump(2) << std::endl;
            return 0;
        } else {
            json raw;
            try {
                raw = read_args_file(argv[1]);
            } catch (const ParamError& e) {
                raw = nullptr;
                result = finish(json{{"failed", true}, {"msg", e.what()}}, nullptr);
            }
            if (!raw.is_null()) result = run_parsed(raw, spec, body);
        }
    } catch (...) {
        result = json{{"failed", true}, {"changed", false}, {"msg", "internal error while preparing the result"}};
    }
    // Replace invalid UTF-8 (command output) rather than throwing while printing.
    std::cout << result.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
    return result.value("failed", false) ? 1 : 0;
}

}  // namespace pbs_patch
