// Does the PBS API really answer on its port? `active` is not enough: a proxy in a crash loop is `active`
// between restarts, and a unit can be active while nothing listens. PBS's proxy speaks TLS on 8007 (plain HTTP
// is answered with a redirect), so the probe sends a TLS ClientHello and reads the first record of the reply:
// a handshake record (ServerHello) or a TLS alert is a TLS server answering; an `HTTP/` status line a plain HTTP
// server. No TLS library: the handshake is never completed, only started.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace pbs_patch {

enum class PortAnswer { Tls, TlsAlert, Http, Unknown, Nothing };
std::string to_string(PortAnswer answer);

// A TLS 1.2-compatible ClientHello (ECDHE + AES-GCM/ChaCha20 suites, the usual extensions) with the given 32
// random bytes; SNI only for a host name, not for an address.
std::string tls_client_hello(const std::string& server_name, std::string_view random32);

// What the first bytes read after the ClientHello say.
PortAnswer classify_port_answer(std::string_view reply);

struct PortProbe {
    std::string host;
    int port = 0;
    bool connected = false;
    PortAnswer answer = PortAnswer::Nothing;
    std::string detail;  // connect error, or what answered
    double elapsed_s = 0.0;
    bool answered() const { return answer == PortAnswer::Tls || answer == PortAnswer::TlsAlert || answer == PortAnswer::Http; }
    nlohmann::json to_json() const;
};

// Connects (bounded), sends the ClientHello, waits (bounded) for the first bytes. Never throws.
PortProbe probe_tls_port(const std::string& host, int port, std::chrono::milliseconds timeout);

}  // namespace pbs_patch
