// Runs an external command from an argv vector (never a shell) under a hard timeout that ends the
// whole process group, as timeout(1) does (apt-get spawns dpkg spawns maintainer scripts), and every
// descendant that left the group (apt runs dpkg on a pty, in a new session).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace pbs_patch {

// Keeps the last `limit` bytes of a stream at a cost linear in its size: the buffer grows to twice the
// limit before its front is dropped, so every byte is moved at most once by trimming.
class OutputTail {
public:
    explicit OutputTail(std::size_t limit) : limit_(limit) {}
    void append(const char* data, std::size_t n);
    std::string take();                                   // the last `limit` bytes
    std::size_t total() const { return total_; }          // bytes appended
    std::size_t bytes_moved() const { return moved_; }    // bytes copied by trimming (<= total)

private:
    std::string buffer_;
    std::size_t limit_;
    std::size_t total_ = 0;
    std::size_t moved_ = 0;
};

struct RunOptions {
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
    // Between SIGTERM to the group and SIGKILL to the group.
    std::chrono::milliseconds kill_grace{std::chrono::seconds(5)};
    // Added to (or replacing) the inherited environment. Default: LC_ALL=C and no prompts.
    std::map<std::string, std::string> env = default_env();
    std::size_t max_output_bytes = 8 * 1024 * 1024;  // per stream; the tail is kept
    // After SIGKILL: how long to wait for the process tree to be gone. A process in uninterruptible sleep
    // (state D: a hung disk, NFS or FUSE request, a frozen cgroup) does not die of SIGKILL until the kernel
    // lets go; the runner then returns anyway and reports it in `left_behind` and `error`.
    std::chrono::milliseconds kill_wait{std::chrono::seconds(10)};

    static std::map<std::string, std::string> default_env();
};

// A process of the command's tree still there after SIGKILL and kill_wait.
struct LeftBehind {
    int pid = 0;
    std::string comm;
    std::string state;  // from /proc/<pid>/status, e.g. "D (disk sleep)"
};

struct ProcessResult {
    std::vector<std::string> argv;
    int rc = -1;             // exit code; 128+N when killed by signal N; 124 on timeout; 127 not found
    bool timed_out = false;
    bool started = false;
    std::string out;
    std::string err;
    double duration_s = 0.0;
    std::string error;       // why it could not start, when !started; what was left behind after a timeout
    std::vector<LeftBehind> left_behind;
};

// Resolves argv[0] on PATH (plus the sbin directories a module's minimal PATH may lack).
std::string find_executable(const std::string& name);

ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

}  // namespace pbs_patch
