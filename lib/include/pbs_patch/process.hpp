// Runs an external command from an argv vector (never a shell) under a hard timeout that ends the
// whole process group, as timeout(1) does (apt-get spawns dpkg spawns maintainer scripts), and every
// descendant that left the group (apt runs dpkg on a pty, in a new session).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace pbs_patch {

struct RunOptions {
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
    // Between SIGTERM to the group and SIGKILL to the group.
    std::chrono::milliseconds kill_grace{std::chrono::seconds(5)};
    // Added to (or replacing) the inherited environment. Default: LC_ALL=C and no prompts.
    std::map<std::string, std::string> env = default_env();
    std::size_t max_output_bytes = 8 * 1024 * 1024;  // per stream; the tail is kept

    static std::map<std::string, std::string> default_env();
};

struct ProcessResult {
    std::vector<std::string> argv;
    int rc = -1;             // exit code; 128+N when killed by signal N; 124 on timeout; 127 not found
    bool timed_out = false;
    bool started = false;
    std::string out;
    std::string err;
    double duration_s = 0.0;
    std::string error;       // why it could not start, when !started
};

// Resolves argv[0] on PATH (plus the sbin directories a module's minimal PATH may lack).
std::string find_executable(const std::string& name);

ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

}  // namespace pbs_patch
