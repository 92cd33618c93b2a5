// The TLS port probe: a hand-built ClientHello (RFC 5246 7.4.1.2, RFC 8446 4.1.2 for the record layout) and a
// classification of the first bytes of the reply.
#include "pbs_patch/port_probe.hpp"
#include "pbs_patch/unique_fd.hpp"

#include <fmt/format.h>

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

namespace pbs_patch {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

void put16(std::string& out, std::size_t v) {
    out += static_cast<char>((v >> 8) & 0xff);
    out += static_cast<char>(v & 0xff);
}

void put24(std::string& out, std::size_t v) {
    out += static_cast<char>((v >> 16) & 0xff);
    put16(out, v & 0xffff);
}

std::string extension(unsigned type, const std::string& body) {
    std::string e;
    put16(e, type);
    put16(e, body.size());
    return e + body;
}

std::string u16_list(std::initializer_list<unsigned> values) {
    std::string list;
    for (unsigned v : values) put16(list, v);
    std::string out;
    put16(out, list.size());
    return out + list;
}

bool is_address(const std::string& host) {
    in6_addr a6{};
    in_addr a4{};
    return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

using Fd = UniqueFd;

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

std::string to_string(PortAnswer answer) {
    switch (answer) {
        case PortAnswer::Tls: return "tls";
        case PortAnswer::TlsAlert: return "tls-alert";
        case PortAnswer::Http: return "http";
        case PortAnswer::Unknown: return "unknown";
        case PortAnswer::Nothing: break;
    }
    return "nothing";
}

std::string tls_client_hello(const std::string& server_name, std::string_view random32) {
    std::string hello;
    put16(hello, 0x0303);  // client_version TLS 1.2
    std::string random(random32.substr(0, 32));
    random.resize(32, '\0');
    hello += random;
    hello += '\0';  // no session id
    hello += u16_list({0xc02f, 0xc030, 0xc02b, 0xc02c, 0xcca8, 0xcca9, 0x009e, 0x009f, 0x00ff});
    hello += '\x01';
    hello += '\0';  // compression: null only
    std::string exts;
    if (!server_name.empty() && !is_address(server_name) && server_name.size() < 256) {
        std::string entry;
        entry += '\0';  // host_name
        put16(entry, server_name.size());
        entry += server_name;
        std::string list;
        put16(list, entry.size());
        exts += extension(0x0000, list + entry);
    }
    exts += extension(0x000a, u16_list({0x001d, 0x0017, 0x0018}));                  // supported_groups
    exts += extension(0x000b, std::string("\x01\x00", 2));                            // ec_point_formats
    exts += extension(0x000d, u16_list({0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
                                        0x0403, 0x0503, 0x0603}));                    // signature_algorithms
    exts += extension(0x0017, "");                                                    // extended_master_secret
    put16(hello, exts.size());
    hello += exts;

    std::string handshake;
    handshake += '\x01';  // client_hello
    put24(handshake, hello.size());
    handshake += hello;
    std::string record;
    record += '\x16';  // handshake
    put16(record, 0x0301);
    put16(record, handshake.size());
    return record + handshake;
}

PortAnswer classify_port_answer(std::string_view reply) {
    if (reply.empty()) return PortAnswer::Nothing;
    if (reply.size() >= 2 && static_cast<unsigned char>(reply[1]) == 0x03) {
        if (reply[0] == '\x16') return PortAnswer::Tls;
        if (reply[0] == '\x15') return PortAnswer::TlsAlert;
    }
    if (reply.substr(0, 5) == "HTTP/") return PortAnswer::Http;
    // An HTTP/0.9-style answer to a request line it could not read: the error page alone (Python's http.server)
    std::string head(reply.substr(0, 14));
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head.rfind("<!doctype html", 0) == 0 || head.rfind("<html", 0) == 0) return PortAnswer::Http;
    return PortAnswer::Unknown;
}

json PortProbe::to_json() const {
    return {{"host", host}, {"port", port}, {"connected", connected}, {"answer", to_string(answer)},
            {"answered", answered()}, {"detail", detail}, {"elapsed_s", elapsed_s}};
}

PortProbe probe_tls_port(const std::string& host, int port, std::chrono::milliseconds timeout) {
    PortProbe probe;
    probe.host = host;
    probe.port = port;
    const auto started = Clock::now();
    const auto deadline = started + timeout;
    const auto done = [&](std::string detail) {
        probe.detail = std::move(detail);
        probe.elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
        return probe;
    };

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
        return done(fmt::format("cannot resolve {}: {}", host, ::gai_strerror(rc)));
    }
    std::string last_error = "no address";
    for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
        Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
        if (fd.get() < 0) {
            last_error = std::strerror(errno);
            continue;
        }
        if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last_error = fmt::format("connect: {}", std::strerror(errno));
            continue;
        }
        pollfd p{fd.get(), POLLOUT, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
            last_error = "connect: timed out";
            continue;
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            last_error = fmt::format("connect: {}", std::strerror(err));
            continue;
        }
        probe.connected = true;
        std::random_device rd;
        std::string random;
        for (int i = 0; i < 32; ++i) random += static_cast<char>(rd() & 0xff);
        const std::string hello = tls_client_hello(host, random);
        std::size_t sent = 0;
        while (sent < hello.size()) {
            const auto n = ::send(fd.get(), hello.data() + sent, hello.size() - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EAGAIN) {
                pollfd w{fd.get(), POLLOUT, 0};
                if (::poll(&w, 1, remaining_ms(deadline)) > 0) continue;
            }
            ::freeaddrinfo(found);
            return done(fmt::format("connected, but sending failed: {}", n < 0 ? std::strerror(errno) : "timed out"));
        }
        std::string reply;
        while (reply.size() < 5) {
            pollfd r{fd.get(), POLLIN, 0};
            if (::poll(&r, 1, remaining_ms(deadline)) <= 0) break;
            char buffer[64];
            const auto n = ::recv(fd.get(), buffer, sizeof buffer, 0);
            if (n <= 0) break;
            reply.append(buffer, static_cast<std::size_t>(n));
        }
        ::freeaddrinfo(found);
        probe.answer = classify_port_answer(reply);
        switch (probe.answer) {
            case PortAnswer::Tls: return done("a TLS server answered (handshake)");
            case PortAnswer::TlsAlert: return done("a TLS server answered (alert)");
            case PortAnswer::Http: return done("an HTTP server answered");
            case PortAnswer::Unknown: return done(fmt::format("connected, but the reply is neither TLS nor HTTP ({} bytes)", reply.size()));
            case PortAnswer::Nothing: break;
        }
        return done(remaining_ms(deadline) == 0 ? "connected, but no answer within the bound"
                                                 : "connected, but the connection was closed without an answer");
    }
    ::freeaddrinfo(found);
    return done(last_error);
}

}  // namespace pbs_patch
