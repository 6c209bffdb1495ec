// What a poll borrows for its time in flight: the read buffers' pool
// (src/poll/read_buffer_pool.hpp: storage only while something is buffered, blocks reused by
// size class), the lent bodies and parsers (src/poll/in_flight.hpp), and pollers that hold
// none of it while idle.
#include <mdagg/poll.hpp>

#include "in_flight.hpp"
#include "read_buffer_pool.hpp"

#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using mdagg::detail::read_buffer_pool_stats;
using mdagg::detail::ReadBuffer;
using mdagg::detail::release_if_empty;

namespace {

// Puts `n` bytes into the buffer as the driver's read does: into at least 4 KiB prepared.
void fill(ReadBuffer& b, std::size_t n) {
    auto space = b.prepare(std::max<std::size_t>(n, 4096));
    std::memset(space.data(), 'x', n);
    b.commit(n);
}

std::size_t outstanding() {
    const auto s = read_buffer_pool_stats();
    return s.taken - s.returned;
}

}  // namespace

TEST(ReadBufferPool, AnEmptiedBufferGivesItsStorageBackAndTheNextReadTakesTheSameBlock) {
    ReadBuffer a(64 * 1024);
    ReadBuffer b(64 * 1024);
    EXPECT_EQ(a.capacity(), 0u) << "no storage before the first read";
    const auto before = outstanding();
    fill(a, 300);
    EXPECT_EQ(a.capacity(), 4096u) << "a read takes a 4 KiB block";
    EXPECT_EQ(outstanding(), before + 1);
    const char* block = static_cast<const char*>(a.data().data());
    a.consume(a.size());
    release_if_empty(a);
    EXPECT_EQ(a.capacity(), 0u);
    EXPECT_EQ(outstanding(), before);

    const auto fresh = read_buffer_pool_stats().fresh;
    fill(b, 100);
    EXPECT_EQ(static_cast<const char*>(b.data().data()), block) << "the block given back is reused";
    EXPECT_EQ(read_buffer_pool_stats().fresh, fresh) << "no malloc for a block the pool holds";
    b.consume(b.size());
    release_if_empty(b);
    EXPECT_EQ(outstanding(), before);
}

TEST(ReadBufferPool, BytesLeftOverKeepTheirStorage) {
    ReadBuffer a(64 * 1024);
    fill(a, 500);
    a.consume(200);  // the rest belongs to the next response on the connection
    release_if_empty(a);
    ASSERT_EQ(a.size(), 300u);
    EXPECT_EQ(a.capacity(), 4096u);
    EXPECT_EQ(std::string(static_cast<const char*>(a.data().data()), 3), "xxx");
    a.consume(a.size());
    release_if_empty(a);
    EXPECT_EQ(a.capacity(), 0u);
}

TEST(ReadBufferPool, LargerAnswersTakeLargerClassesAndTheLargestGoToMalloc) {
    const auto before = read_buffer_pool_stats();
    {
        ReadBuffer a(1024 * 1024);
        fill(a, 4096);
        fill(a, 4096);  // grows: 8 KiB
        EXPECT_EQ(a.capacity(), 8192u);
        fill(a, 4096);
        fill(a, 4096);  // 16 KiB
        EXPECT_EQ(a.capacity(), 16384u);
        a.consume(a.size());
        release_if_empty(a);
    }
    const auto mid = read_buffer_pool_stats();
    EXPECT_EQ(mid.taken - mid.returned, before.taken - before.returned) << "every block was given back";
    {
        ReadBuffer a(1024 * 1024);
        fill(a, 4096);
        fill(a, 4096);
        fill(a, 4096);
        fill(a, 4096);
        EXPECT_EQ(read_buffer_pool_stats().fresh, mid.fresh) << "4, 8 and 16 KiB blocks come from the lists";
        fill(a, 100 * 1024);  // beyond 64 KiB: malloc
        EXPECT_EQ(read_buffer_pool_stats().fresh, mid.fresh + 1);
        const auto cached = read_buffer_pool_stats().cached;
        a.consume(a.size());
        release_if_empty(a);
        EXPECT_EQ(read_buffer_pool_stats().cached, cached) << "a block beyond 64 KiB is not kept";
    }
}

TEST(ReadBufferPool, ABlockGivenBackOnAnotherThreadJoinsThatThreadsLists) {
    ReadBuffer a(64 * 1024);
    fill(a, 10);
    a.consume(a.size());
    std::size_t cached_there = 0;
    std::size_t fresh_there = 0;
    std::thread other([&] {
        release_if_empty(a);  // a strand's poll ends on the other io thread
        cached_there = read_buffer_pool_stats().cached;
        ReadBuffer b(64 * 1024);
        fill(b, 10);  // and its next read there reuses the block
        fresh_there = read_buffer_pool_stats().fresh;
        b.consume(b.size());
        release_if_empty(b);
    });
    other.join();
    EXPECT_EQ(cached_there, 1u);
    EXPECT_EQ(fresh_there, 0u);
}

TEST(LentBody, AReturnedBodysStorageIsLentToTheNextPollAndTheReturnedStringIsEmpty) {
    using mdagg::detail::lend_body;
    using mdagg::detail::return_body;
    using mdagg::detail::spare_bodies;
    const auto before = spare_bodies();
    std::string a;
    lend_body(a);  // nothing spare of this size yet: stays as it is
    a.assign(300, 'b');
    const char* storage = a.data();
    return_body(a);
    EXPECT_EQ(a.capacity(), std::string().capacity()) << "an idle poller's body holds no heap";
    EXPECT_EQ(spare_bodies(), before + 1);
    std::string b;
    lend_body(b);
    EXPECT_EQ(b.data(), storage) << "the next poll reuses the storage";
    EXPECT_TRUE(b.empty());
    EXPECT_GE(b.capacity(), 300u);
    EXPECT_EQ(spare_bodies(), before);
    std::string small = "short";  // no heap: nothing to keep
    return_body(small);
    EXPECT_EQ(spare_bodies(), before);
    return_body(b);
}

TEST(InFlight, TheValueLivesFromEmplaceToResetAndItsStorageIsReused) {
    mdagg::detail::InFlight<std::string> v;
    EXPECT_FALSE(v.has_value());
    v.emplace(100, 'x');
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->size(), 100u);
    const void* slot = &static_cast<std::optional<std::string>&>(v);
    v.reset();
    EXPECT_FALSE(v.has_value());
    mdagg::detail::InFlight<std::string> w;
    w.emplace("y");
    EXPECT_EQ(&static_cast<std::optional<std::string>&>(w), slot) << "the block went back to the free list";
    EXPECT_EQ(*w, "y");
}

namespace {

// Answers every GET with the same small quote, keeping the connection open.
asio::awaitable<void> serve(tcp::socket socket) {
    const std::string body = R"({"b":"1.00","a":"1.01"})";
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::string buffer;
    for (;;) {
        char chunk[1024];
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        buffer.append(chunk, n);
        for (auto end = buffer.find("\r\n\r\n"); end != std::string::npos; end = buffer.find("\r\n\r\n")) {
            buffer.erase(0, end + 4);
            auto [wec, w] = co_await asio::async_write(socket, asio::buffer(answer), asio::as_tuple(asio::use_awaitable));
            if (wec) co_return;
        }
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
}

}  // namespace

TEST(PollerGroup, IdlePollersHoldNoReadBufferWhileTheirConnectionsStayOpen) {
    asio::io_context io(1);  // this thread runs every poll: the pool's figures are its own
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept_loop(acceptor), asio::detached);
    std::vector<std::string> symbols;
    for (int i = 0; i < 40; ++i) symbols.push_back(std::string("S").append(std::to_string(i)));  // not "S" + ...: g++ 12 -O3 -Wrestrict false positive
    mdagg::Config config;
    mdagg::SourceConfig s;
    s.name = "test";
    s.url.scheme = "http";
    s.url.host = "127.0.0.1";
    s.url.port = acceptor.local_endpoint().port();
    s.url.target_template = "/quotes/{symbol}";
    s.interval = 20ms;
    s.timeout = 1s;
    s.max_in_flight = symbols.size();
    s.max_body_bytes = 1024;
    s.symbols = symbols;
    s.fields.bid = "/b";
    s.fields.ask = "/a";
    config.sources.push_back(s);
    mdagg::HostConfig h;
    h.host = s.url.host;
    h.port = s.url.port;
    config.hosts.push_back(h);
    mdagg::Universe universe{{"test"}, symbols};
    std::size_t quotes = 0;
    mdagg::PollerGroup group(io, config, universe, [&](const mdagg::Quote&) { ++quotes; });
    const auto before = read_buffer_pool_stats();
    const auto bodies_before = mdagg::detail::spare_bodies();
    bool all_exited = false;
    group.start([&] { all_exited = true; });

    // Between handlers, only polls in flight may hold a buffer (the answers leave nothing over).
    for (int i = 0; i < 20; ++i) {
        io.run_for(20ms);
        EXPECT_LE(outstanding() - (before.taken - before.returned), group.polls_in_flight()) << "after " << i;
    }
    const auto during = read_buffer_pool_stats();
    EXPECT_GE(quotes, 200u) << "40 pollers every 20 ms for 400 ms";
    EXPECT_GE(during.taken - before.taken, quotes) << "each answered poll read into a pooled buffer";
    EXPECT_LT(during.fresh - before.fresh, during.taken - before.taken) << "blocks are reused";

    group.stop_scheduling();
    for (int i = 0; i < 100 && !all_exited; ++i) io.run_for(10ms);
    ASSERT_TRUE(all_exited);
    // The keep-alive connections are still open (nothing closed them), their buffers empty.
    EXPECT_EQ(outstanding(), before.taken - before.returned);
    const auto bodies = mdagg::detail::spare_bodies() - bodies_before;
    EXPECT_GE(bodies, 1u) << "the bodies' storage went back when the polls ended";
    EXPECT_EQ(group.stats(0).connects.load(), symbols.size()) << "one connection per poller, kept";
}
