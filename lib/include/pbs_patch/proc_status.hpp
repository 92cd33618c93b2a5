// /proc/<pid>/status: the process's name (its comm, at most 15 characters), state and parent, as the kernel
// prints them (fs/proc/array.c). Pure parser plus a thin reader.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pbs_patch {

struct ProcStatus {
    std::string name;        // "Name:" (comm, truncated by the kernel to 15 bytes, with \\ and \n escaped)
    char state = '?';        // "State:" letter: R S D Z T t X I P
    std::string state_text;  // "D (disk sleep)"
    int ppid = 0;            // "PPid:"
    int tgid = 0;            // "Tgid:"

    bool zombie() const { return state == 'Z' || state == 'X'; }  // exited: holds nothing, runs nothing
    bool uninterruptible() const { return state == 'D'; }
};

// Throws std::runtime_error naming the field when Name, State or PPid is missing or malformed.
ProcStatus parse_proc_status(std::string_view text);

// Reads <proc_root>/<pid>/status; nullopt when the process is gone or the file unreadable.
std::optional<ProcStatus> read_proc_status(const std::string& proc_root, int pid);

}  // namespace pbs_patch
