// The simulator over TLS, in-process on port 0, driven by an Asio SSL client over loopback with
// the certificates tests/tls/make_certs.sh makes at test time.
#include "mdagg/sim.hpp"

#include "tls_certs.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using mdagg::sim::Options;
using mdagg::sim::Simulator;

Options tls_options(const std::string& cert = "server") {
    Options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.symbols = 10;
    o.control = true;
    o.control_port = 0;
    o.tls_cert = tls_certs::file(cert + ".pem");
    o.tls_key = tls_certs::file(cert + ".key");
    return o;
}

// The simulator on its own io_context and thread.
class Server {
public:
    explicit Server(Options options) {
        sim_ = std::make_unique<Simulator>(io_, std::move(options));
        sim_->start();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~Server() {
        sim_->stop();
        if (std::async(std::launch::async, [this] { thread_.join(); }).wait_for(10s) !=
            std::future_status::ready) {
            io_.stop();
        }
        if (thread_.joinable()) thread_.join();
    }
    Simulator& sim() { return *sim_; }
    std::uint16_t port() const { return sim_->port(); }
    std::uint16_t control_port() const { return sim_->control_port(); }
    nlohmann::json stats() const { return nlohmann::json::parse(sim_->stats_json()); }

private:
    asio::io_context io_{1};
    std::unique_ptr<Simulator> sim_;
    std::thread thread_;
};

using Session = std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)>;

// A TLS client that verifies the test CA and the name "localhost", and can offer the session
// of its previous connection.
class Client {
public:
    explicit Client(const std::string& version = "") : ctx_(ssl::context::tls_client) {
        ctx_.load_verify_file(tls_certs::file("ca.pem"));
        ctx_.set_verify_mode(ssl::verify_peer);
        SSL_CTX_set_session_cache_mode(ctx_.native_handle(), SSL_SESS_CACHE_CLIENT);
        if (version == "1.2") SSL_CTX_set_max_proto_version(ctx_.native_handle(), TLS1_2_VERSION);
        if (version == "1.3") SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_3_VERSION);
    }

    void use_client_certificate() {
        ctx_.use_certificate_chain_file(tls_certs::file("client.pem"));
        ctx_.use_private_key_file(tls_certs::file("client.key"), ssl::context::pem);
    }

    // Connects and handshakes, offering the last session; false on failure (error()).
    bool connect(std::uint16_t port) {
        // Freed without close_notify, OpenSSL marks the session not resumable: a client that
        // wants to resume after a dropped connection must say the shutdown happened.
        if (stream_) SSL_set_shutdown(stream_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        stream_ = std::make_unique<ssl::stream<tcp::socket>>(io_, ctx_);
        buffer_.clear();
        SSL* native = stream_->native_handle();
        SSL_set_tlsext_host_name(native, "localhost");
        stream_->set_verify_callback(ssl::host_name_verification("localhost"));
        if (session_) SSL_set_session(native, session_.get());
        beast::error_code ec;
        stream_->lowest_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
        if (!ec) ec = run([&](auto done) { stream_->async_handshake(ssl::stream_base::client, done); });
        error_ = ec;
        return !ec;
    }

    bool reused() const { return SSL_session_reused(stream_->native_handle()) == 1; }
    std::string protocol() const { return SSL_get_version(stream_->native_handle()); }
    beast::error_code error() const { return error_; }

    // GET on the open connection; nullopt on failure. Keeps the session for the next connect()
    // (after the response: TLS 1.3 tickets arrive after the handshake).
    std::optional<http::response<http::string_body>> get(const std::string& target) {
        http::request<http::string_body> req{http::verb::get, target, 11};
        req.set(http::field::host, "localhost");
        error_ = run([&](auto done) { http::async_write(*stream_, req, done); });
        if (error_) return std::nullopt;
        http::response<http::string_body> res;
        error_ = run([&](auto done) { http::async_read(*stream_, buffer_, res, done); });
        if (error_) return std::nullopt;
        session_ = Session(SSL_get1_session(stream_->native_handle()), SSL_SESSION_free);
        return res;
    }

    // True once the server closed the connection (a read ends in an error), within `limit`.
    bool closed_by_server(std::chrono::milliseconds limit) {
        char byte;
        error_ = run([&](auto done) { stream_->async_read_some(asio::buffer(&byte, 1), done); }, limit);
        return error_ && error_ != asio::error::timed_out;
    }

private:
    template <class Start>
    beast::error_code run(Start start, std::chrono::milliseconds limit = 10s) {
        std::optional<beast::error_code> result;
        start([&result](beast::error_code ec, auto&&...) { result = ec; });
        io_.restart();
        io_.run_for(limit);
        if (result) return *result;
        beast::error_code ignored;
        stream_->lowest_layer().close(ignored);  // ends the operation; the test fails
        io_.restart();
        io_.run_for(1s);
        return asio::error::timed_out;
    }

    asio::io_context io_;
    ssl::context ctx_;
    std::unique_ptr<ssl::stream<tcp::socket>> stream_;
    beast::flat_buffer buffer_;
    Session session_{nullptr, SSL_SESSION_free};
    beast::error_code error_;
};

TEST(SimTls, ServesQuotesAndControlOverTlsAndCountsAFullHandshake) {
    Server server(tls_options());
    Client client;
    ASSERT_TRUE(client.connect(server.port())) << client.error().message();
    EXPECT_FALSE(client.reused());
    auto quote = client.get("/quotes/STOCK_1");
    ASSERT_TRUE(quote) << client.error().message();
    EXPECT_EQ(quote->result_int(), 200);
    EXPECT_EQ(nlohmann::json::parse(quote->body())["seq"], 1);
    auto again = client.get("/quotes/STOCK_1");  // keep-alive: no second handshake
    ASSERT_TRUE(again) << client.error().message();
    EXPECT_EQ(nlohmann::json::parse(again->body())["seq"], 2);

    Client control;
    ASSERT_TRUE(control.connect(server.control_port())) << control.error().message();
    auto stats = control.get("/stats");
    ASSERT_TRUE(stats) << control.error().message();
    const auto json = nlohmann::json::parse(stats->body());
    EXPECT_EQ(json["tls"]["handshakes"], 2);
    EXPECT_EQ(json["tls"]["resumptions"], 0);
    EXPECT_EQ(json["tls"]["handshake_failures"], 0);
    EXPECT_EQ(json["per_symbol"]["STOCK_1"], 2);
}

TEST(SimTls, PlainSimulatorReportsNoTlsInStats) {
    Options o = tls_options();
    o.tls_cert.clear();
    o.tls_key.clear();
    Server server(o);
    EXPECT_FALSE(server.stats().contains("tls"));
}

class SimTlsVersion : public testing::TestWithParam<std::string> {};

TEST_P(SimTlsVersion, ReconnectOfferingTheSessionIsAResumption) {
    Server server(tls_options());
    Client client(GetParam());
    ASSERT_TRUE(client.connect(server.port())) << client.error().message();
    EXPECT_EQ(client.protocol(), "TLSv" + GetParam());
    ASSERT_TRUE(client.get("/quotes/STOCK_2"));
    ASSERT_TRUE(client.connect(server.port())) << client.error().message();
    EXPECT_TRUE(client.reused());
    ASSERT_TRUE(client.get("/quotes/STOCK_2"));
    const auto stats = server.stats();
    EXPECT_EQ(stats["tls"]["handshakes"], 1);
    EXPECT_EQ(stats["tls"]["resumptions"], 1);
    EXPECT_EQ(stats["last_seq"]["STOCK_2"], 2);
}

INSTANTIATE_TEST_SUITE_P(Versions, SimTlsVersion, testing::Values("1.2", "1.3"),
                         [](const auto& info) { return "TLS" + info.param.substr(2); });

TEST(SimTls, RestartDropsTlsConnectionsAndTheReconnectResumes) {
    Server server(tls_options());
    Client client;
    ASSERT_TRUE(client.connect(server.port()));
    ASSERT_TRUE(client.get("/quotes/STOCK_3"));
    server.sim().add_fault(R"({"kind":"restart","period":"300ms"})");
    EXPECT_TRUE(client.closed_by_server(10s)) << client.error().message();

    bool connected = false;
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         !connected && std::chrono::steady_clock::now() < deadline;) {
        connected = client.connect(server.port());
        if (!connected) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(connected) << client.error().message();
    EXPECT_TRUE(client.reused());
    auto quote = client.get("/quotes/STOCK_3");
    ASSERT_TRUE(quote);
    EXPECT_EQ(nlohmann::json::parse(quote->body())["seq"], 2);
    const auto stats = server.stats();
    EXPECT_EQ(stats["faults"]["restart"], 1);
    EXPECT_EQ(stats["tls"]["handshakes"], 1);
    EXPECT_EQ(stats["tls"]["resumptions"], 1);
}

TEST(SimTls, ClientCaRequiresAClientCertificateSignedByIt) {
    Options o = tls_options();
    o.tls_client_ca = tls_certs::file("ca.pem");
    Server server(o);
    Client without;
    // TLS 1.3 reports a missing client certificate only on the first read after the handshake.
    const bool refused = !without.connect(server.port()) || !without.get("/quotes/STOCK_1");
    EXPECT_TRUE(refused);

    Client with;
    with.use_client_certificate();
    ASSERT_TRUE(with.connect(server.port())) << with.error().message();
    auto quote = with.get("/quotes/STOCK_1");
    ASSERT_TRUE(quote) << with.error().message();
    EXPECT_EQ(quote->result_int(), 200);
    ASSERT_TRUE(with.connect(server.port())) << with.error().message();
    EXPECT_TRUE(with.reused());  // the session id context lets verified sessions resume
    // Answered: the server has finished its side of the handshake (and counted it).
    ASSERT_TRUE(with.get("/quotes/STOCK_1")) << with.error().message();

    const auto stats = server.stats();
    EXPECT_EQ(stats["tls"]["handshake_failures"], 1);
    EXPECT_EQ(stats["tls"]["handshakes"], 1);
    EXPECT_EQ(stats["tls"]["resumptions"], 1);
    EXPECT_EQ(stats["last_seq"]["STOCK_1"], 2);
}

TEST(SimTls, VersionOptionAllowsOnlyThatVersion) {
    Options o = tls_options();
    o.tls_version = "1.2";
    Server server(o);
    Client only13("1.3");
    EXPECT_FALSE(only13.connect(server.port()));
    Client any;
    ASSERT_TRUE(any.connect(server.port())) << any.error().message();
    EXPECT_EQ(any.protocol(), "TLSv1.2");
}

std::string construction_error(const Options& o) {
    asio::io_context io;
    try {
        Simulator sim(io, o);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

TEST(SimTls, UnusableCertificateOrKeyIsRefusedNamingTheOptionAndFile) {
    Options o = tls_options();
    o.tls_cert = "/nonexistent/server.pem";
    EXPECT_EQ(construction_error(o), "--tls-cert: cannot read '/nonexistent/server.pem'");

    o = tls_options();
    o.tls_cert = tls_certs::file("server.key");  // a key where the certificate belongs
    EXPECT_NE(construction_error(o).find("--tls-cert: cannot load '" + o.tls_cert + "'"),
              std::string::npos)
        << construction_error(o);

    o = tls_options();
    o.tls_key = tls_certs::file("other-name.key");
    const std::string mismatch = construction_error(o);
    EXPECT_NE(mismatch.find("--tls-key: '" + o.tls_key + "' does not match"), std::string::npos)
        << mismatch;

    o = tls_options();
    o.tls_key.clear();
    EXPECT_EQ(construction_error(o), "--tls-cert and --tls-key go together");

    o = tls_options();
    o.tls_version = "1.1";
    EXPECT_EQ(construction_error(o), "--tls-version: expected 1.2 or 1.3, got '1.1'");

    o = tls_options();
    o.tls_cert.clear();
    o.tls_key.clear();
    o.tls_client_ca = tls_certs::file("ca.pem");
    EXPECT_EQ(construction_error(o), "--tls-client-ca and --tls-version need --tls-cert and --tls-key");
}

}  // namespace
