// A poll waiting for its answer with nothing read holds no read buffer: the TLS transport's
// every wait, and the plain transport's read_when_ready (the late grace), give the block back
// to the pool (read_buffer_pool.hpp) while the socket is waited for, and take one again when
// bytes come. Counted with the pool's per-thread counters; the io_context runs on this thread.
#include "tls_context.hpp"
#include "tls_transport.hpp"
#include "transport.hpp"

#include "tls_test_pki.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

namespace mdagg::detail {
namespace {

using error_code = boost::system::error_code;
using ReadResult = std::tuple<error_code, std::size_t>;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::size_t blocks_out() {
    const auto s = read_buffer_pool_stats();
    return s.taken - s.returned;
}

// Starts `task` on `io`; its result lands in `out` when it ends.
template <class T>
void start(asio::io_context& io, Task<T> task, std::optional<T>& out) {
    auto root = [](Task<T> t, std::optional<T>& o) -> Task<void> { o.emplace(co_await std::move(t)); };
    root(std::move(task), out).spawn(io.get_executor(), [](void*, std::exception_ptr) {}, nullptr);
}

class ReadReleaseTest : public ::testing::Test {
protected:
    // Runs handlers until the io_context has nothing ready: a read left is then waiting.
    void settle() {
        io_.restart();
        io_.poll();
    }
    void run_until(const std::function<bool()>& done) {
        while (!done()) {
            io_.restart();
            io_.run_one();
        }
    }
    std::string text(ReadBuffer& b) { return {static_cast<const char*>(b.data().data()), b.size()}; }

    asio::io_context io_;
    tcp::acceptor acceptor_{io_, {asio::ip::make_address("127.0.0.1"), 0}};
    tcp::socket server_{io_};
    std::vector<tcp::endpoint> endpoints_{acceptor_.local_endpoint()};
};

TEST_F(ReadReleaseTest, PlainReadWhenReadyHoldsNoBlockWhileItWaits) {
    TcpTransport t(io_.get_executor(), 64 * 1024);
    bool accepted = false;
    acceptor_.async_accept(server_, [&](error_code ec) { accepted = !ec; });
    std::optional<error_code> connected;
    start(io_, t.connect(endpoints_, [] { return false; }), connected);
    run_until([&] { return accepted && connected; });
    ASSERT_FALSE(*connected);

    // The ordinary read holds its block across the wait (its first recv needs the space).
    const auto before = blocks_out();
    std::optional<ReadResult> ordinary;
    start(io_, [](TcpTransport& c) -> Task<ReadResult> { co_return co_await c.read_some(4096); }(t), ordinary);
    settle();
    ASSERT_FALSE(ordinary) << "nothing was sent";
    EXPECT_EQ(t.buffer().capacity(), 4096u);
    EXPECT_EQ(blocks_out(), before + 1);
    t.cancel();
    run_until([&] { return ordinary.has_value(); });
    EXPECT_EQ(std::get<0>(*ordinary), asio::error::operation_aborted);
    t.release_buffer();
    ASSERT_EQ(blocks_out(), before);

    // read_when_ready waits holding nothing, then reads what came into a block taken then.
    std::optional<ReadResult> late;
    start(io_, t.read_when_ready(4096), late);
    settle();
    ASSERT_FALSE(late);
    EXPECT_EQ(t.buffer().capacity(), 0u) << "a waiting read holds no block";
    EXPECT_EQ(blocks_out(), before);
    asio::write(server_, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n")));
    run_until([&] { return late.has_value(); });
    ASSERT_FALSE(std::get<0>(*late));
    t.buffer().commit(std::get<1>(*late));
    EXPECT_EQ(text(t.buffer()), "HTTP/1.1 200 OK\r\n");
    EXPECT_EQ(blocks_out(), before + 1);

    // Bytes still buffered belong to the answer: the next wait keeps them and their block.
    std::optional<ReadResult> more;
    start(io_, t.read_when_ready(4096), more);
    settle();
    EXPECT_GE(t.buffer().capacity(), t.buffer().size() + 4096) << "the buffered bytes and the space after them";
    t.cancel();
    run_until([&] { return more.has_value(); });
    EXPECT_EQ(std::get<0>(*more), asio::error::operation_aborted) << "the deadline's cancel ends the wait";
    EXPECT_EQ(text(t.buffer()), "HTTP/1.1 200 OK\r\n");
    t.close();
    EXPECT_EQ(blocks_out(), before);
}

TEST_F(ReadReleaseTest, TlsReadHoldsNoBlockWhileItWaits) {
    const auto dir = std::filesystem::temp_directory_path() / ("mdagg-read-release-" + std::to_string(::getpid()));
    const test::TestPki pki(dir);
    ssl::context server_ctx(ssl::context::tls_server);
    server_ctx.use_certificate_chain_file(pki.server.cert_file);
    server_ctx.use_private_key_file(pki.server.key_file, ssl::context::pem);
    TlsContextCache cache;
    TlsConfig config;
    config.ca_file = pki.ca.cert_file;
    std::atomic<std::uint64_t> handshakes{0}, resumptions{0};
    const TlsPeer peer{cache.get(config), "localhost", false, &handshakes, &resumptions};
    TlsTransport t(io_.get_executor(), 64 * 1024, peer);

    ssl::stream<tcp::socket&> server(server_, server_ctx);
    bool served = false;
    acceptor_.async_accept(server_, [&](error_code ec) {
        ASSERT_FALSE(ec);
        server.async_handshake(ssl::stream_base::server, [&](error_code hec) { served = !hec; });
    });
    std::optional<error_code> connected;
    start(io_, t.connect(endpoints_, [] { return false; }), connected);
    run_until([&] { return served && connected; });
    ASSERT_FALSE(*connected) << connected->message();

    const auto before = blocks_out();
    std::optional<ReadResult> read;
    start(io_, t.read_some(4096), read);
    settle();
    ASSERT_FALSE(read) << "nothing was sent";
    EXPECT_EQ(t.buffer().capacity(), 0u) << "a waiting TLS read holds no block";
    EXPECT_EQ(blocks_out(), before);

    bool sent = false;
    asio::async_write(server, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n")),
                      [&](error_code ec, std::size_t) { sent = !ec; });
    run_until([&] { return sent && read.has_value(); });
    ASSERT_FALSE(std::get<0>(*read)) << std::get<0>(*read).message();
    t.buffer().commit(std::get<1>(*read));
    EXPECT_EQ(text(t.buffer()), "HTTP/1.1 200 OK\r\n");
    EXPECT_EQ(blocks_out(), before + 1);
    t.buffer().consume(t.buffer().size());
    t.release_buffer();
    EXPECT_EQ(blocks_out(), before);
    t.close();
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mdagg::detail
