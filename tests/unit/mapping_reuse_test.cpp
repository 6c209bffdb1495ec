// QuoteMapper reused: nothing leaks from one body to the next, no allocation on the hot path,
// copies share the compiled fields and map concurrently.
#include "mapping_test_helpers.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

// Counts every heap allocation in the process, to hold map() to its no-allocation promise.
namespace {
std::atomic<long> g_allocations{0};
// Out of line so that GCC's -Wmismatched-new-delete does not pair the inlined free() with
// the replaced operator new.
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }

// ---------------------------------------------------------------------------------------------
// Reuse

TEST(MappingReuse, NothingLeaksFromOneBodyToTheNext) {
    QuoteMapper m(sim_map());
    Quote q = map_ok(m, sim_body, "STOCK_7");
    ASSERT_TRUE(q.has_bid_size);
    ASSERT_EQ(q.seq, 412);

    // Same mapper, a body without any optional field.
    q = map_ok(m, R"({"symbol":"STOCK_7","bidPrice":"99","askPrice":"100"})", "STOCK_7");
    EXPECT_TRUE(Exact(q.bid, "99"));
    EXPECT_FALSE(q.has_bid_size);
    EXPECT_FALSE(q.has_ask_size);
    EXPECT_EQ(q.seq, -1);
    EXPECT_EQ(q.exchange_time_ns, 0);

    // A body missing a required field must not borrow it from the previous one.
    EXPECT_EQ(m.map(R"({"symbol":"STOCK_7","bidPrice":"99"})", "STOCK_7", q),
              MappingError::missing_field);
    // Nor a symbol.
    EXPECT_EQ(m.map(R"({"bidPrice":"99","askPrice":"100"})", "STOCK_7", q),
              MappingError::missing_field);
    // A failure mid-body leaves nothing behind either.
    EXPECT_EQ(m.map(R"({"symbol":"STOCK_7","bidPrice":"98","askPrice":)", "STOCK_7", q),
              MappingError::malformed_json);
    q = map_ok(m, R"({"symbol":"STOCK_7","askPrice":"7","bidPrice":"6","seq":5})", "STOCK_7");
    EXPECT_TRUE(Exact(q.bid, "6"));
    EXPECT_TRUE(Exact(q.ask, "7"));
    EXPECT_EQ(q.seq, 5);
}

TEST(MappingReuse, EscapedValuesDoNotAlias) {
    QuoteMapper m(bid_ask());
    Quote a = map_ok(m, R"({"bid":"\u0031.25","ask":"\u0032.5"})");
    Quote b = map_ok(m, R"({"bid":"\u0033","ask":"\u0034.000"})");
    EXPECT_TRUE(Exact(a.bid, "1.25"));
    EXPECT_TRUE(Exact(a.ask, "2.5"));
    EXPECT_TRUE(Exact(b.bid, "3"));
    EXPECT_TRUE(Exact(b.ask, "4.000"));
}

TEST(MappingReuse, ManyRandomBodiesMapIndependently) {
    QuoteMapper m(sim_map());
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2000; ++i) {
        const std::int64_t bid = static_cast<std::int64_t>(rng() % 10'000'000);
        const int scale = static_cast<int>(rng() % 9);
        const bool with_size = rng() & 1;
        const bool with_seq = rng() & 1;
        const std::string bid_text = Decimal(bid, scale).to_string();
        const std::string ask_text = Decimal(bid + 1, scale).to_string();
        std::string body = R"({"symbol":"S","bidPrice":")" + bid_text + R"(","askPrice":)" +
                           ask_text;  // ask as a JSON number
        if (with_size) body += R"(,"bidQty":")" + std::to_string(i) + R"(.0")";
        if (with_seq) body += R"(,"seq":)" + std::to_string(i);
        body += "}";
        const Quote q = map_ok(m, body, "S");
        EXPECT_EQ(q.bid.to_string(), bid_text);
        EXPECT_EQ(q.ask.to_string(), ask_text);
        EXPECT_EQ(q.has_bid_size, with_size);
        if (with_size) {
            EXPECT_EQ(q.bid_size, Decimal(i * 10, 1));
        }
        EXPECT_EQ(q.seq, with_seq ? i : -1);
    }
}

TEST(MappingReuse, MovedMapperKeepsWorking) {
    QuoteMapper a(sim_map());
    QuoteMapper b(std::move(a));
    EXPECT_EQ(map_ok(b, sim_body, "STOCK_7").seq, 412);
    QuoteMapper c(bid_ask());
    c = std::move(b);
    EXPECT_EQ(map_ok(c, sim_body, "STOCK_7").seq, 412);
}

// ---------------------------------------------------------------------------------------------
// Hot path

TEST(MappingHotPath, NoAllocationAfterFirstCall) {
    struct Setup {
        FieldMap fields;
        std::string_view body;
        std::string_view symbol;
    };
    FieldMap kraken = bid_ask("/result/*/b/0", "/result/*/a/0");
    kraken.bid_size = "/result/*/b/2";
    FieldMap alpaca = bid_ask("/quote/bp", "/quote/ap");
    alpaca.exchange_time = TimeField{"/quote/t", TimeUnit::rfc3339};
    FieldMap escaped = bid_ask("/b~1id", "/ask");
    escaped.symbol = "/s";
    const std::string long_escaped =
        R"({"b/id":"\u0031.)" + std::string(200, '0') + R"(","ask":"2","s":"\u0041BCDEFGHIJKLMNOPQRSTUVWXYZ_LONG_SYMBOL","pad":[)" +
        std::string(100, '[') + std::string(100, ']') + "]}";
    const std::vector<Setup> setups = {
        {sim_map(), sim_body, "STOCK_7"},
        {binance_map(), binance_body, "LTCBTC"},
        {kraken, kraken_body, ""},
        {alpaca, alpaca_body, ""},
        {escaped, long_escaped, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_LONG_SYMBOL"},
    };
    for (const Setup& s : setups) {
        QuoteMapper m(s.fields);
        Quote q;
        std::error_code ec = m.map(s.body, s.symbol, q);  // may size buffers
        ASSERT_FALSE(ec) << ec.message() << " " << s.body;
        const long before = g_allocations.load();
        for (int i = 0; i < 100; ++i) {
            ec = m.map(s.body, s.symbol, q);
            if (ec) break;
            ec = m.map("{\"broken\":", s.symbol, q);  // errors must not allocate either
            if (ec != MappingError::malformed_json) break;
            ec = {};
        }
        const long allocations = g_allocations.load() - before;
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(allocations, 0) << s.body;
    }
}

TEST(MappingHotPath, TypicalBodiesDoNotAllocateEvenOnTheFirstCall) {
    const long at_start = g_allocations.load();
    QuoteMapper m(sim_map());
    ASSERT_GT(g_allocations.load(), at_start) << "the allocation counter is not counting";
    Quote q;
    const long before = g_allocations.load();
    const std::error_code ec = m.map(sim_body, "STOCK_7", q);
    const long allocations = g_allocations.load() - before;
    EXPECT_FALSE(ec);
    EXPECT_EQ(allocations, 0);
}

// A source compiles its fields once; its pollers' mappers are copies that share them.
TEST(MappingShared, CopiesShareTheCompiledFieldsAndMapAlike) {
    const QuoteMapper original(sim_map());
    const long before = g_allocations.load();
    const QuoteMapper copy = original;
    EXPECT_EQ(g_allocations.load() - before, 0) << "a copy compiled the fields again";
    Quote a, b;
    ASSERT_FALSE(original.map(sim_body, "STOCK_7", a));
    ASSERT_FALSE(copy.map(sim_body, "STOCK_7", b));
    EXPECT_EQ(a.bid, b.bid);
    EXPECT_EQ(a.ask, b.ask);
    EXPECT_EQ(a.seq, b.seq);
    EXPECT_EQ(a.exchange_time_ns, b.exchange_time_ns);
    EXPECT_EQ(copy.map(sim_body, "STOCK_8", b), MappingError::symbol_mismatch);
}

// Pollers on several io threads map at the same time with copies of one mapper: the working
// state is per thread, so bodies never mix (TSan runs this one).
TEST(MultiThreadedMapping, CopiesOfOneMapperMapConcurrently) {
    const QuoteMapper shared(sim_map());
    auto body_for = [](int t, int i) {
        return R"({"symbol":"STOCK_)" + std::to_string(t) + R"(","bidPrice":")" + std::to_string(100 + i) +
               R"(.25","bidQty":"1","askPrice":")" + std::to_string(100 + i) + R"(.5","askQty":"2","time":1764000000000,"seq":)" +
               std::to_string(i) + "}";
    };
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            const QuoteMapper mine = shared;
            const std::string symbol = "STOCK_" + std::to_string(t);
            for (int i = 0; i < 2000; ++i) {
                Quote q;
                const std::string body = body_for(t, i);
                if (mine.map(body, symbol, q) || q.seq != i || q.bid.to_string() != std::to_string(100 + i) + ".25")
                    wrong.fetch_add(1);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST(MappingHotPath, DeepNestingDoesNotRecurse) {
    const std::size_t depth = 100000;
    std::string body = R"({"bid":"1","ask":"2","x":)" + std::string(depth, '[') +
                       std::string(depth, ']') + "}";
    QuoteMapper m(bid_ask());
    Quote q;
    EXPECT_FALSE(m.map(body, "", q));
    body.pop_back();
    EXPECT_EQ(m.map(body, "", q), MappingError::malformed_json);
}
