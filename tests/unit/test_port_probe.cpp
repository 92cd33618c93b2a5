// The TLS port probe: the ClientHello's structure and what a reply's first bytes say. The replies were recorded
// from OpenSSL 3 (Python's ssl module on Debian 12) answering a TLS 1.2 ClientHello: a ServerHello, and a
// handshake_failure alert for a hello with no acceptable cipher; the HTTP sample is Python http.server's answer.
#include "fixtures.hpp"
#include "pbs_patch/port_probe.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace pbs_patch;

namespace {
std::string unhex(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
        if (text[i] == '\n') break;
        out += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
    }
    return out;
}
unsigned u16(const std::string& s, std::size_t at) {
    return (static_cast<unsigned>(static_cast<unsigned char>(s[at])) << 8) | static_cast<unsigned char>(s[at + 1]);
}
}  // namespace

TEST_CASE("ClientHello: record and handshake lengths agree, SNI only for names") {
    const auto hello = tls_client_hello("pbs.example.lan", std::string(32, 'r'));
    REQUIRE(hello.size() > 60);
    CHECK(hello[0] == '\x16');
    CHECK(u16(hello, 1) == 0x0301);
    CHECK(u16(hello, 3) == hello.size() - 5);
    CHECK(hello[5] == '\x01');
    const std::size_t body = (static_cast<std::size_t>(static_cast<unsigned char>(hello[6])) << 16) | u16(hello, 7);
    CHECK(body == hello.size() - 9);
    CHECK(u16(hello, 9) == 0x0303);
    CHECK(hello.find("pbs.example.lan") != std::string::npos);
    CHECK(tls_client_hello("127.0.0.1", "").find("127.0.0.1") == std::string::npos);
    CHECK(tls_client_hello("::1", "").size() < hello.size());
}

TEST_CASE("port answers: TLS handshake, TLS alert, HTTP, other, nothing") {
    CHECK(classify_port_answer(unhex(fixture("tls_reply_server_hello.hex"))) == PortAnswer::Tls);
    CHECK(classify_port_answer(unhex(fixture("tls_reply_alert.hex"))) == PortAnswer::TlsAlert);
    CHECK(classify_port_answer(fixture("tls_reply_http_server.txt")) == PortAnswer::Http);
    CHECK(classify_port_answer("HTTP/1.1 400 Bad Request\r\n") == PortAnswer::Http);
    CHECK(classify_port_answer("SSH-2.0-OpenSSH_9.2p1\r\n") == PortAnswer::Unknown);
    CHECK(classify_port_answer("") == PortAnswer::Nothing);
    CHECK(to_string(PortAnswer::TlsAlert) == "tls-alert");
}

namespace {
// A loopback listener on a free port.
int listen_loopback(int& port) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::listen(s, 4) == 0);
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return s;
}
}  // namespace

TEST_CASE("port probe: refused, silent, answering") {
    int port = 0;
    int s = listen_loopback(port);
    ::close(s);  // nobody listens there now
    auto p = probe_tls_port("127.0.0.1", port, std::chrono::seconds(2));
    CHECK_FALSE(p.connected);
    CHECK_FALSE(p.answered());
    CHECK(p.detail.find("refused") != std::string::npos);

    // listening but never answering: bounded, not answered
    s = listen_loopback(port);
    p = probe_tls_port("127.0.0.1", port, std::chrono::milliseconds(300));
    CHECK(p.connected);
    CHECK_FALSE(p.answered());
    CHECK(p.answer == PortAnswer::Nothing);
    ::close(s);

    // a server that answers like OpenSSL does
    s = listen_loopback(port);
    const std::string reply = unhex(fixture("tls_reply_server_hello.hex"));
    std::thread server([&] {
        const int c = ::accept(s, nullptr, nullptr);
        char buf[512];
        (void)::recv(c, buf, sizeof buf, 0);
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        ::close(c);
    });
    p = probe_tls_port("127.0.0.1", port, std::chrono::seconds(10));
    server.join();
    ::close(s);
    CHECK(p.connected);
    CHECK(p.answered());
    CHECK(p.answer == PortAnswer::Tls);
    CHECK(p.to_json()["answer"] == "tls");
}
