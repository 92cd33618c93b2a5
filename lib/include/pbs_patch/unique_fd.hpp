#pragma once
// A file descriptor closed when it goes out of scope (not copyable): for the probes that open sockets and lock
// files and must never leak one on an early return or an exception.
#include <unistd.h>

namespace pbs_patch {

class UniqueFd {
public:
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() {
        if (fd_ >= 0) ::close(fd_);
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace pbs_patch
