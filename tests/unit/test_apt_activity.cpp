// Package-manager process detection and /proc/locks parsing (recorded on a real host).
#include "fixtures.hpp"
#include "pbs_patch/apt_activity.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include <cstdio>
#include <csignal>
#include <fcntl.h>
#include <sys/wait.h>
#include <filesystem>
#include <fstream>
#include <vector>
#include <unistd.h>

using namespace pbs_patch;

TEST_CASE("package-manager processes by comm and by script") {
    CHECK(is_package_manager_process({1, "apt-get", "apt-get -y dist-upgrade"}));
    CHECK(is_package_manager_process({1, "dpkg", "/usr/bin/dpkg --status-fd 23 --configure -a"}));
    CHECK(is_package_manager_process({1, "apt", "apt upgrade"}));
    CHECK(is_package_manager_process({1, "aptitude", "aptitude safe-upgrade"}));
    CHECK(is_package_manager_process({1, "unattended-upgr", "/usr/bin/python3 /usr/bin/unattended-upgrade"}));
    CHECK(is_package_manager_process({1, "python3", "/usr/bin/python3 /usr/bin/unattended-upgrade --dry-run"}));
    CHECK_FALSE(is_package_manager_process({1, "bash", "bash -c echo dpkg"}));
    CHECK_FALSE(is_package_manager_process({1, "aptly", "aptly serve"}));
    CHECK_FALSE(is_package_manager_process({1, "sshd", "sshd: root@pts/0"}));
    // apt-daily's script runs apt-get update and unattended-upgrade: it is activity (issue 11).
    CHECK(is_package_manager_process({1, "apt.systemd.dai", "/bin/sh /usr/lib/apt/apt.systemd.daily"}));
    CHECK(is_package_manager_process({1, "sh", "/bin/sh /usr/lib/apt/apt.systemd.daily install"}));
}

TEST_CASE("not activity: zombies, and the unattended-upgrades shutdown helper (comm truncated like unattended-upgrade)") {
    ProcessInfo helper{666, "unattended-upgr",
                       "/usr/bin/python3 /usr/share/unattended-upgrades/unattended-upgrade-shutdown --wait-for-signal",
                       'S', 1};
    CHECK_FALSE(is_package_manager_process(helper));
    CHECK(why_not_activity(helper) == "unattended-upgrades shutdown helper (idle)");
    ProcessInfo upgrade{891, "unattended-upgr", "/usr/bin/python3 /usr/bin/unattended-upgrade --dry-run", 'R', 870};
    CHECK(is_package_manager_process(upgrade));
    CHECK(why_not_activity(upgrade).empty());
    ProcessInfo zombie{885, "dpkg", "", 'Z', 884};
    CHECK_FALSE(is_package_manager_process(zombie));
    CHECK(why_not_activity(zombie) == "zombie");
    // Interpreter options before the script do not hide it.
    CHECK_FALSE(is_package_manager_process(
        {2, "unattended-upgr", "/usr/bin/python3 -E /usr/share/unattended-upgrades/unattended-upgrade-shutdown", 'S', 1}));
}

TEST_CASE("recorded Debian 12 procfs: unattended-upgrades idle, apt-daily and unattended-upgrade at work, a zombie dpkg") {
    // tests/unit/fixtures/proc_unattended_upgrades/README says what each PID was.
    const auto found = find_package_manager_processes(std::string(PBS_PATCH_FIXTURES) + "/proc_unattended_upgrades", -1);
    std::vector<int> pids;
    for (const auto& p : found) pids.push_back(p.pid);
    CHECK(pids == std::vector<int>{774, 891});
    const auto all = list_processes(std::string(PBS_PATCH_FIXTURES) + "/proc_unattended_upgrades");
    REQUIRE(all.size() == 4);
    CHECK(all[0].comm == "unattended-upgr");  // 15 characters: the kernel truncates comm
    CHECK(all[0].state == 'S');
    CHECK(all[0].ppid == 1);
    CHECK(all[2].state == 'Z');
    CHECK(all[2].cmdline.empty());  // a zombie has no command line left
}

TEST_CASE("descendants by parent links (our own detached upgrade's apt-get, dpkg, maintainer scripts)") {
    const std::vector<ProcessInfo> ps = {
        {10, "pbs_upgrade", "", 'S', 1}, {11, "apt-get", "", 'S', 10}, {12, "dpkg", "", 'S', 11},
        {13, "postinst", "", 'S', 12},   {20, "apt-get", "", 'S', 1},  {21, "dpkg", "", 'S', 20},
    };
    auto d = descendants_among(ps, 10);
    std::sort(d.begin(), d.end());
    CHECK(d == std::vector<int>{11, 12, 13});
    CHECK(descendants_among(ps, 99).empty());
}

TEST_CASE("/proc/locks: recorded POSIX and FLOCK entries") {
    const auto locks = parse_proc_locks(fixture("proc_locks.txt"));
    REQUIRE(locks.size() == 2);
    CHECK(locks[0].kind == "FLOCK");
    CHECK(locks[1].kind == "POSIX");
    CHECK(locks[1].access == "WRITE");
    CHECK(locks[1].major == 0xfe);
    CHECK(locks[1].minor == 0);
    CHECK(locks[1].inode == 9978279ULL);
}

TEST_CASE("/proc/locks: waiters, OFD locks and junk") {
    const auto locks = parse_proc_locks(
        "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n"
        "1: -> POSIX  ADVISORY  WRITE 999 fd:01:5678 0 EOF\n"
        "2: OFDLCK ADVISORY  READ  -1 08:11:42 0 EOF\n"
        "garbage\n");
    REQUIRE(locks.size() == 2);
    CHECK(locks[0].pid == 1234);
    CHECK(locks[0].major == 0xfd);
    CHECK(locks[0].minor == 1);
    CHECK(locks[1].pid == -1);
    CHECK(locks[1].minor == 0x11);
}

TEST_CASE("lock holders: a live fcntl lock is found with its holder (real /proc)") {
    const auto path = std::filesystem::temp_directory_path() / ("pbs_patch_lock_" + std::to_string(::getpid()));
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(fd >= 0);
    CHECK(find_lock_holders({path.string()}, "/proc").empty());
    // Locks are per process: fork a child to hold it, as apt-get would.
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    if (child == 0) {
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        ::fcntl(fd, F_SETLK, &fl);
        char c = 'x';
        (void)!::write(ready[1], &c, 1);
        ::pause();
        ::_exit(0);
    }
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    const auto holders = find_lock_holders({path.string(), "/nonexistent/lock"}, "/proc");
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(fd);
    ::close(ready[0]);
    ::close(ready[1]);
    std::filesystem::remove(path);
    REQUIRE(holders.size() == 1);
    CHECK(holders[0].pid == child);
    CHECK(holders[0].path == path.string());
}

TEST_CASE("process scan sees this test process, and excludes what it is told to") {
    const auto all = list_processes("/proc");
    bool found = false;
    for (const auto& p : all) found = found || p.pid == ::getpid();
    CHECK(found);
    for (const auto& p : find_package_manager_processes("/proc", ::getpid())) CHECK(p.pid != ::getpid());
    CHECK(list_processes("/nonexistent").empty());
}

TEST_CASE("package managers in another root (chroot, container) are not the host's") {
    // A procfs tree of our own: self and a host dpkg in "/", a chroot dpkg and apt-get elsewhere.
    const auto proc = std::filesystem::temp_directory_path() / ("pbs_patch_proc_roots_" + std::to_string(::getpid()));
    std::filesystem::remove_all(proc);
    auto make = [&](const std::string& pid, const std::string& comm, const std::string& root) {
        std::filesystem::create_directories(proc / pid);
        std::ofstream(proc / pid / "comm") << comm << "\n";
        std::ofstream(proc / pid / "cmdline") << comm;
        if (!root.empty()) std::filesystem::create_symlink(root, proc / pid / "root");
    };
    std::filesystem::create_directories(proc / "self");
    std::filesystem::create_symlink("/", proc / "self" / "root");
    make("100", "dpkg", "/");
    make("200", "dpkg", "/var/cache/pbs-patch-lab/stage1/rootfs");
    make("300", "apt-get", "/var/lib/lxc/ct1/rootfs");
    make("400", "dpkg", "");  // root unreadable: counted, to be safe
    const auto found = find_package_manager_processes(proc.string(), -1);
    std::vector<int> pids;
    for (const auto& p : found) pids.push_back(p.pid);
    CHECK(pids == std::vector<int>{100, 400});
    CHECK(root_of(proc.string(), "200") == "/var/cache/pbs-patch-lab/stage1/rootfs");
    CHECK(root_of("/proc", "self") == "/");
    std::filesystem::remove_all(proc);
}

TEST_CASE("apt's lock failures, recorded from apt 2.6 on Debian 12 (held lock-frontend, lists lock, archives lock)") {
    CHECK(is_apt_lock_failure(fixture("apt_lock_frontend_bookworm.txt")));
    CHECK(is_apt_lock_failure(fixture("apt_lock_lists_bookworm.txt")));
    CHECK(is_apt_lock_failure(fixture("apt_lock_archives_bookworm.txt")));
    CHECK_FALSE(is_apt_lock_failure("E: Unable to locate package foo\n"));
    CHECK_FALSE(is_apt_lock_failure("E: Sub-process /usr/bin/dpkg returned an error code (1)\n"));
    CHECK_FALSE(is_apt_lock_failure(""));
}
