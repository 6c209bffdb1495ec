// The TLS transport against an in-process TLS server (asio::ssl on a loopback port, a
// throwaway PKI made at test time): verified handshakes, resumption on reconnect, the verify
// failures with OpenSSL's reason and their error class, an interrupted handshake, close_notify
// versus a truncated close; and the context cache.
#include "tls_context.hpp"
#include "tls_error.hpp"
#include "tls_transport.hpp"
#include "poll_fsm.hpp"

#include <mdagg/config.hpp>
#include <mdagg/poll.hpp>
#include <mdagg/quote.hpp>

#include "tls_test_pki.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

namespace mdagg::detail {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// What the server does with each connection after its handshake and one answer.
enum class AfterAnswer { close_notify, cut, keep };

// A blocking TLS server on its own thread: handshake, read a request (up to the blank line),
// answer "ok", then close as told. `silent`: accept TCP but never speak (a stuck handshake).
class TlsServer {
public:
    TlsServer(const test::Issued& cert, TlsVersion max_version = TlsVersion::tls1_3, bool silent = false)
        : ctx_(ssl::context::tls_server), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}), silent_(silent) {
        ctx_.use_certificate_chain_file(cert.cert_file);
        ctx_.use_private_key_file(cert.key_file, ssl::context::pem);
        SSL_CTX_set_max_proto_version(ctx_.native_handle(),
                                      max_version == TlsVersion::tls1_2 ? TLS1_2_VERSION : TLS1_3_VERSION);
        thread_ = std::thread([this] { serve(); });
    }
    ~TlsServer() {
        stop_ = true;
        error_code ignored;
        tcp::socket poke(io_);
        poke.connect(acceptor_.local_endpoint(), ignored);
        thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::atomic<AfterAnswer> after{AfterAnswer::close_notify};
    std::atomic<int> answered{0};

private:
    void serve() {
        std::vector<tcp::socket> parked;  // silent connections stay open until the end
        while (!stop_) {
            tcp::socket socket(io_);
            error_code ec;
            acceptor_.accept(socket, ec);
            if (ec || stop_) break;
            if (silent_) {
                parked.push_back(std::move(socket));
                continue;
            }
            ssl::stream<tcp::socket> stream(std::move(socket), ctx_);
            stream.handshake(ssl::stream_base::server, ec);
            if (ec) continue;  // the client refused our certificate
            for (;;) {
                asio::streambuf request;
                asio::read_until(stream, request, "\r\n\r\n", ec);
                if (ec) break;
                asio::write(stream, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")), ec);
                ++answered;
                if (after == AfterAnswer::keep) continue;
                if (after == AfterAnswer::close_notify) stream.shutdown(ec);
                break;
            }
            stream.next_layer().close(ec);
        }
    }

    asio::io_context io_;
    ssl::context ctx_;
    tcp::acceptor acceptor_;
    bool silent_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

class TlsTransportTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = std::filesystem::temp_directory_path() / ("mdagg-poll-tls-" + std::to_string(::getpid()));
        pki_ = new test::TestPki(dir_);
    }
    static void TearDownTestSuite() {
        delete pki_;
        std::filesystem::remove_all(dir_);
    }

    TlsPeer peer_for(const std::string& name, TlsConfig c = {}) {
        if (c.ca_file.empty()) c.ca_file = pki_->ca.cert_file;
        boost::system::error_code not_ip;
        asio::ip::make_address(name, not_ip);
        return TlsPeer{cache_.get(c), name, !not_ip, &handshakes_, &resumptions_};
    }

    // Runs `task` to its end on io_.
    template <class T>
    T run(Task<T> task) {
        std::optional<T> result;
        auto root = [](Task<T> t, std::optional<T>& out) -> Task<void> { out.emplace(co_await std::move(t)); };
        root(std::move(task), result).spawn(io_.get_executor(), [](void*, std::exception_ptr) {}, nullptr);
        io_.restart();
        io_.run();
        return std::move(*result);
    }

    error_code connect(TlsTransport& t, std::uint16_t port, std::function<bool()> interrupted = [] { return false; }) {
        endpoints_.assign(1, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        return run(t.connect(endpoints_, interrupted));
    }

    // One GET and its whole answer; the error of the first failing step.
    error_code exchange(TlsTransport& t, std::string& answer) {
        error_code ec;
        const std::string_view request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        std::size_t n = t.write_now(asio::buffer(request), ec);
        if (ec) return ec;
        if (n < request.size()) {
            auto [wec, wn] = run(t.write(asio::buffer(request)));
            if (wec) return wec;
        }
        while (t.buffer().size() < 40) {
            auto [rec, rn] = run(t.read_some(4096));
            if (rec) return rec;
            t.buffer().commit(rn);
        }
        answer.assign(static_cast<const char*>(t.buffer().data().data()), t.buffer().size());
        t.buffer().consume(t.buffer().size());
        return {};
    }

    static inline std::filesystem::path dir_;
    static inline test::TestPki* pki_ = nullptr;
    asio::io_context io_;
    TlsContextCache cache_;
    std::atomic<std::uint64_t> handshakes_{0}, resumptions_{0};
    std::vector<tcp::endpoint> endpoints_;
};

TEST_F(TlsTransportTest, VerifiedHandshakeThenAnAnswer) {
    TlsServer server(pki_->server);
    TlsPeer peer = peer_for("localhost");
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    ASSERT_FALSE(connect(t, server.port())) << "handshake";
    std::string answer;
    ASSERT_FALSE(exchange(t, answer));
    EXPECT_EQ(answer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_EQ(handshakes_, 1u);
    EXPECT_EQ(resumptions_, 0u);
}

TEST_F(TlsTransportTest, IpAddressIsCheckedAgainstIpSans) {
    TlsServer server(pki_->server);
    TlsPeer peer = peer_for("127.0.0.1");
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    EXPECT_FALSE(connect(t, server.port()));
    t.close();  // the server serves one connection at a time
    TlsPeer other = peer_for("127.0.0.2");
    TlsTransport t2(io_.get_executor(), 64 * 1024, other);
    const error_code ec = connect(t2, server.port());
    EXPECT_EQ(ec.category(), tls_verify_category());
    EXPECT_NE(ec.message().find("IP address mismatch"), std::string::npos) << ec.message();
}

void expect_resumption(TlsTransportTest& test, TlsServer& server, TlsTransport& t,
                       std::atomic<std::uint64_t>& handshakes, std::atomic<std::uint64_t>& resumptions,
                       const std::function<error_code(TlsTransport&, std::uint16_t)>& connect,
                       const std::function<error_code(TlsTransport&, std::string&)>& exchange) {
    (void)test;
    std::string answer;
    ASSERT_FALSE(connect(t, server.port()));
    ASSERT_FALSE(exchange(t, answer));  // a TLS 1.3 ticket arrives with the first reads
    EXPECT_TRUE(t.has_session());
    t.close();
    ASSERT_FALSE(connect(t, server.port()));
    ASSERT_FALSE(exchange(t, answer));
    EXPECT_EQ(handshakes, 2u);
    EXPECT_EQ(resumptions, 1u) << "the reconnect resumed the session";
}

TEST_F(TlsTransportTest, ReconnectResumesTheSessionTls13) {
    TlsServer server(pki_->server, TlsVersion::tls1_3);
    server.after = AfterAnswer::keep;
    TlsPeer peer = peer_for("localhost");
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    expect_resumption(*this, server, t, handshakes_, resumptions_,
                      [this](TlsTransport& tr, std::uint16_t p) { return connect(tr, p); },
                      [this](TlsTransport& tr, std::string& a) { return exchange(tr, a); });
}

TEST_F(TlsTransportTest, ReconnectResumesTheSessionTls12) {
    TlsServer server(pki_->server, TlsVersion::tls1_2);
    server.after = AfterAnswer::keep;
    TlsPeer peer = peer_for("localhost");
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    expect_resumption(*this, server, t, handshakes_, resumptions_,
                      [this](TlsTransport& tr, std::uint16_t p) { return connect(tr, p); },
                      [this](TlsTransport& tr, std::string& a) { return exchange(tr, a); });
}

TEST_F(TlsTransportTest, ReconnectAfterTheServerCutTheConnectionResumes) {
    // Venues close idle connections without close_notify: the session must stay resumable.
    for (const TlsVersion version : {TlsVersion::tls1_3, TlsVersion::tls1_2}) {
        handshakes_ = 0;
        resumptions_ = 0;
        TlsServer server(pki_->server, version);
        server.after = AfterAnswer::cut;
        TlsPeer peer = peer_for("localhost");
        TlsTransport t(io_.get_executor(), 64 * 1024, peer);
        std::string answer;
        ASSERT_FALSE(connect(t, server.port()));
        ASSERT_FALSE(exchange(t, answer));
        auto [ec, n] = run(t.read_some(4096));
        ASSERT_TRUE(is_tls_truncation(ec)) << ec.message();
        t.close();
        ASSERT_FALSE(connect(t, server.port()));
        ASSERT_FALSE(exchange(t, answer));
        EXPECT_EQ(resumptions_, 1u) << (version == TlsVersion::tls1_3 ? "TLS 1.3" : "TLS 1.2");
        t.close();
    }
}

TEST_F(TlsTransportTest, MinVersionRefusesAnOlderServer) {
    TlsServer server(pki_->server, TlsVersion::tls1_2);
    TlsConfig c;
    c.min_version = TlsVersion::tls1_3;
    TlsPeer peer = peer_for("localhost", c);
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    const error_code ec = connect(t, server.port());
    ASSERT_TRUE(ec);
    EXPECT_EQ(tls_error_class(ec), PollError::tls_handshake) << ec.message();
    EXPECT_EQ(handshakes_, 0u);
}

struct VerifyCase {
    const char* name;
    test::Issued test::TestPki::*cert;
    const char* reason;
};

TEST_F(TlsTransportTest, RefusedCertificatesGiveOpenSslsReasonAndTheVerifyClass) {
    const VerifyCase cases[] = {
        {"wrong name", &test::TestPki::wrong_name, "hostname mismatch"},
        {"expired", &test::TestPki::expired, "certificate has expired"},
        {"unknown CA", &test::TestPki::unknown_ca, "unable to get local issuer certificate"},
    };
    for (const auto& c : cases) {
        TlsServer server(pki_->*c.cert);
        TlsPeer peer = peer_for("localhost");
        TlsTransport t(io_.get_executor(), 64 * 1024, peer);
        const error_code ec = connect(t, server.port());
        EXPECT_EQ(ec.category(), tls_verify_category()) << c.name << ": " << ec.message();
        EXPECT_NE(ec.message().find(c.reason), std::string::npos) << c.name << ": " << ec.message();
        EXPECT_EQ(tls_error_class(ec), PollError::tls_verify) << c.name;
        EXPECT_EQ(verdict_of(*tls_error_class(ec)), HostVerdict::failing) << c.name << " trips the breaker";
    }
    EXPECT_EQ(handshakes_, 0u);
}

TEST_F(TlsTransportTest, VerifyFalseAcceptsAnyCertificate) {
    TlsServer server(pki_->unknown_ca);
    TlsConfig c;
    c.verify = false;
    TlsPeer peer = peer_for("localhost", c);
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    EXPECT_FALSE(connect(t, server.port()));
}

TEST_F(TlsTransportTest, StuckHandshakeEndsWhenInterrupted) {
    TlsServer server(pki_->server, TlsVersion::tls1_3, /*silent=*/true);
    TlsPeer peer = peer_for("localhost");
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);
    // The poll's deadline: cancel() the pending wait, then interrupted() says so.
    bool expired = false;
    asio::steady_timer deadline(io_, std::chrono::milliseconds(100));
    deadline.async_wait([&](error_code) {
        expired = true;
        t.cancel();
    });
    const error_code ec = connect(t, server.port(), [&] { return expired; });
    EXPECT_EQ(ec, make_error_code(TlsErrc::handshake_interrupted)) << ec.message();
    EXPECT_EQ(tls_error_class(ec), PollError::tls_handshake);
}

TEST_F(TlsTransportTest, CloseNotifyIsEofAndACutIsTruncation) {
    TlsServer server(pki_->server);
    TlsPeer peer = peer_for("localhost");
    {
        server.after = AfterAnswer::close_notify;
        TlsTransport t(io_.get_executor(), 64 * 1024, peer);
        ASSERT_FALSE(connect(t, server.port()));
        std::string answer;
        ASSERT_FALSE(exchange(t, answer));
        auto [ec, n] = run(t.read_some(4096));
        EXPECT_EQ(ec, asio::error::eof) << ec.message();
    }
    {
        server.after = AfterAnswer::cut;
        TlsTransport t(io_.get_executor(), 64 * 1024, peer);
        ASSERT_FALSE(connect(t, server.port()));
        std::string answer;
        ASSERT_FALSE(exchange(t, answer));
        auto [ec, n] = run(t.read_some(4096));
        EXPECT_TRUE(is_tls_truncation(ec)) << ec.message();
        EXPECT_EQ(tls_error_class(ec), std::nullopt) << "a cut is a reset, not a TLS failure";
    }
}

TEST_F(TlsTransportTest, ContextCacheSharesOnePerSetting) {
    TlsConfig a;
    TlsConfig b;
    b.min_version = TlsVersion::tls1_3;
    auto a1 = cache_.get(a);
    auto a2 = cache_.get(a);
    auto b1 = cache_.get(b);
    EXPECT_EQ(a1, a2);
    EXPECT_NE(a1, b1);
    EXPECT_EQ(cache_.size(), 2u);
    b1.reset();
    EXPECT_EQ(cache_.size(), 1u) << "a setting no source uses any more is dropped";
    EXPECT_NE(SSL_CTX_get_mode(a1->native()) & SSL_MODE_RELEASE_BUFFERS, 0L) << "idle connections hold no buffers";
    EXPECT_EQ(SSL_CTX_get_min_proto_version(b1 ? b1->native() : cache_.get(b)->native()), TLS1_3_VERSION);
}

// A reload builds its SSL contexts before it changes anything: a CA file gone since the config
// was checked refuses the reload whole (the daemon logs "reload failed" and keeps running).
TEST_F(TlsTransportTest, PrepareTlsNamesTheSourceWhoseContextCannotBeBuilt) {
    asio::io_context io(1);
    mdagg::Config config;
    mdagg::Universe universe{{}, {}};
    mdagg::PollerGroup group(io, config, universe, [](const mdagg::Quote&) {});
    mdagg::SourceConfig plain;
    plain.name = "plain";
    plain.url.scheme = "http";
    mdagg::SourceConfig good;
    good.name = "good";
    good.url.scheme = "https";
    good.tls.ca_file = pki_->ca.cert_file;
    EXPECT_NE(group.prepare_tls({plain, good}), nullptr);
    mdagg::SourceConfig gone = good;
    gone.name = "venue";
    gone.tls.ca_file = (dir_ / "removed-ca.pem").string();
    try {
        group.prepare_tls({plain, good, gone});
        ADD_FAILURE() << "a missing CA file must refuse the reload";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("source venue"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace mdagg::detail
