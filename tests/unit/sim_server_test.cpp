// The simulator serving quotes: answers, rates, symbols, threads.
#include "sim_test_helpers.hpp"

namespace {

// Parses "123.45" exactly (digits, a dot, two digits); -1 for anything else.
std::int64_t hundredths(const std::string& text) {
    const auto dot = text.find('.');
    const bool shaped = dot != std::string::npos && dot > 0 && dot + 3 == text.size() &&
                        text.find_first_not_of("0123456789.") == std::string::npos &&
                        text.find('.', dot + 1) == std::string::npos;
    EXPECT_TRUE(shaped) << "not a 2-decimal string: '" << text << "'";
    if (!shaped) return -1;
    return std::stoll(text.substr(0, dot)) * 100 + std::stoll(text.substr(dot + 1));
}

TEST(Sim, QuotesOverKeepAlive) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (std::uint64_t round = 1; round <= 3; ++round) {
        for (std::string symbol : {"STOCK_1", "STOCK_7"}) {
            auto reply = client.get("/quotes/" + symbol);
            ASSERT_FALSE(reply.ec) << reply.ec.message();
            ASSERT_EQ(reply.res.result(), http::status::ok);
            EXPECT_EQ(reply.res[http::field::content_type], "application/json");
            EXPECT_TRUE(reply.res.keep_alive());
            const auto body = nlohmann::json::parse(reply.res.body());
            EXPECT_EQ(body["symbol"], symbol);
            EXPECT_LT(hundredths(body["bidPrice"]), hundredths(body["askPrice"]));
            EXPECT_GT(hundredths(body["bidPrice"]), 0);
            EXPECT_GT(hundredths(body["bidQty"]), 0);
            EXPECT_GT(hundredths(body["askQty"]), 0);
            EXPECT_EQ(body["seq"].get<std::uint64_t>(), round);
            const auto time = body["time"].get<std::int64_t>();
            EXPECT_GE(time, now_ms - 1000);
            EXPECT_LE(time, now_ms + 60'000);
        }
    }
    const auto stats = stats_over(client);
    EXPECT_EQ(stats["connections"], 1);  // everything above shared one connection
    EXPECT_EQ(stats["responses"], 6);
}

TEST(Sim, PricesStayOrderedAndSeqHasNoGaps) {
    Server server(small(3));
    asio::io_context io;
    Client client(io, server.port());
    for (std::uint64_t i = 1; i <= 300; ++i) {
        auto reply = client.get("/quotes/STOCK_2");
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        const auto body = nlohmann::json::parse(reply.res.body());
        ASSERT_LT(hundredths(body["bidPrice"]), hundredths(body["askPrice"])) << body.dump();
        ASSERT_EQ(body["seq"].get<std::uint64_t>(), i);
    }
}

TEST(Sim, UnknownSymbolsAndPathsAre404AndNotCounted) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    for (const char* target : {"/quotes/STOCK_10", "/quotes/STOCK_01", "/quotes/OTHER_1",
                               "/quotes/", "/quotes/STOCK_", "/nope"}) {
        auto reply = client.get(target);
        ASSERT_FALSE(reply.ec) << target << ": " << reply.ec.message();
        EXPECT_EQ(reply.res.result(), http::status::not_found) << target;
        EXPECT_EQ(reply.res[http::field::content_type], "application/json");
        EXPECT_TRUE(nlohmann::json::parse(reply.res.body()).contains("error")) << target;
        EXPECT_TRUE(reply.res.keep_alive());
    }
    auto post = client.get("/quotes/STOCK_1", 5s, http::verb::post);
    ASSERT_FALSE(post.ec);
    EXPECT_EQ(post.res.result(), http::status::method_not_allowed);

    const auto stats = stats_over(client);
    EXPECT_EQ(stats["responses"], 0);
    EXPECT_EQ(stats["not_found"], 6);
    EXPECT_EQ(stats["requests"], 8);  // 6 + POST + /stats
    for (const auto& [name, count] : stats["per_symbol"].items()) EXPECT_EQ(count, 0) << name;
    // The first real quote still gets seq 1: 404s take no sequence numbers.
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], 1);
}

TEST(Sim, StatsMatchTheQuotesReceived) {
    Server server(small(5));
    asio::io_context io;
    Client a(io, server.port());
    Client b(io, server.port());
    std::map<std::string, std::uint64_t> received;
    for (int i = 0; i < 40; ++i) {
        const std::string symbol = "STOCK_" + std::to_string(i % 4);
        auto reply = (i % 3 == 0 ? b : a).get("/quotes/" + symbol);
        ASSERT_FALSE(reply.ec);
        ASSERT_EQ(reply.res.result(), http::status::ok);
        ++received[symbol];
    }
    a.get("/quotes/STOCK_99");  // not a quote
    const auto stats = stats_once_settled(a, 40);
    EXPECT_EQ(stats["responses"], 40);
    EXPECT_GE(stats["requests"], 42);  // 40 + 404 + at least one /stats
    EXPECT_EQ(stats["connections"], 2);
    EXPECT_EQ(stats["failed_writes"], 0);
    EXPECT_EQ(stats["hung_requests"], 0);
    ASSERT_EQ(stats["per_symbol"].size(), 5u);
    for (const auto& [name, count] : stats["per_symbol"].items())
        EXPECT_EQ(count.get<std::uint64_t>(), received[name]) << name;
    EXPECT_EQ(server.sim().responses_written(), 40u);
}

TEST(Sim, MaxRequestsPerConnectionClosesAfterN) {
    auto options = small();
    options.max_requests_per_connection = 3;
    Server server(options);
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 1; i <= 3; ++i) {
        auto reply = client.get("/quotes/STOCK_4");
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        EXPECT_EQ(reply.res.keep_alive(), i < 3) << "response " << i;
    }
    auto after = client.read(2s);
    EXPECT_EQ(after.ec, http::error::end_of_stream) << after.ec.message();

    client.connect();  // the client's side of a reconnect
    auto reply = client.get("/quotes/STOCK_4");
    ASSERT_FALSE(reply.ec);
    EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], 4);
    const auto stats = stats_once_settled(client, 4);
    EXPECT_EQ(stats["connections"], 2);
    EXPECT_EQ(stats["responses"], 4);
}

TEST(Sim, HungSymbolNeverAnswersButOthersDo) {
    auto options = small();
    options.hung_symbols = {"STOCK_3", "GHOST"};
    Server server(options);
    EXPECT_TRUE(server.sim().is_hung("STOCK_3"));
    EXPECT_TRUE(server.sim().is_hung("GHOST"));
    EXPECT_FALSE(server.sim().is_hung("STOCK_4"));

    asio::io_context io;
    Client hung(io, server.port());
    Client fine(io, server.port());
    Reply hung_reply, fine_reply;
    hung.async_get("/quotes/STOCK_3", 400ms, hung_reply);
    fine.async_get("/quotes/STOCK_4", 5s, fine_reply);
    io.run();
    ASSERT_TRUE(hung_reply.done && fine_reply.done);
    EXPECT_EQ(hung_reply.ec, beast::error::timeout) << hung_reply.ec.message();
    EXPECT_GE(hung_reply.elapsed, 350ms);
    ASSERT_FALSE(fine_reply.ec) << fine_reply.ec.message();
    EXPECT_EQ(fine_reply.res.result(), http::status::ok);
    EXPECT_LT(fine_reply.finished, hung_reply.finished);

    Client other(io, server.port());
    EXPECT_EQ(other.get("/quotes/GHOST", 300ms).ec, beast::error::timeout);

    // The client's timeout closed its socket; the server notices and lets go.
    Client observer(io, server.port());
    nlohmann::json stats;
    for (int i = 0; i < 100; ++i) {
        stats = stats_over(observer);
        if (stats["open_connections"] == 2) break;  // `fine` and `observer`
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(stats["open_connections"], 2);
    EXPECT_EQ(stats["hung_requests"], 2);
    EXPECT_EQ(stats["responses"], 1);
    EXPECT_EQ(stats["per_symbol"]["STOCK_3"], 0);
}

TEST(Sim, HungRatioPicksAStableShareByName) {
    asio::io_context io;
    auto options = small(2000);
    options.hung_ratio = 0.2;
    Simulator one(io, options);
    options.seed = 99;  // the choice depends on the name only
    Simulator two(io, options);
    int hung = 0;
    for (int i = 0; i < 2000; ++i) {
        const std::string name = "STOCK_" + std::to_string(i);
        EXPECT_EQ(one.is_hung(name), two.is_hung(name)) << name;
        hung += one.is_hung(name);
    }
    EXPECT_GT(hung, 300);
    EXPECT_LT(hung, 500);

    options.hung_ratio = 0.0;
    Simulator none(io, options);
    options.hung_ratio = 1.0;
    Simulator all(io, options);
    for (int i = 0; i < 2000; ++i) {
        const std::string name = "STOCK_" + std::to_string(i);
        EXPECT_FALSE(none.is_hung(name));
        EXPECT_TRUE(all.is_hung(name));
    }
    EXPECT_FALSE(all.is_hung("STOCK_2000"));  // unknown symbols 404 instead
}

TEST(Sim, RejectsInvalidOptions) {
    asio::io_context io;
    auto options = small();
    options.latency_min = 5ms;
    options.latency_max = 1ms;
    EXPECT_THROW((void)(Simulator(io, options)), std::invalid_argument);
    options = small();
    options.hung_ratio = 1.5;
    EXPECT_THROW((void)(Simulator(io, options)), std::invalid_argument);
}

TEST(Sim, StartFailsWithSystemErrorWhenThePortIsTaken) {
    asio::io_context io;
    Server first(small());
    auto options = small();
    options.host = "127.0.0.1";
    options.port = first.port();
    Simulator second(io, options);
    EXPECT_THROW(second.start(), std::system_error);
}

TEST(Sim, LatencyDelaysQuoteResponses) {
    auto options = small();
    options.latency_min = 30ms;
    options.latency_max = 50ms;
    Server server(options);
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 0; i < 5; ++i) {
        auto reply = client.get("/quotes/STOCK_1");
        ASSERT_FALSE(reply.ec);
        EXPECT_GE(reply.elapsed, 30ms);
        EXPECT_LT(reply.elapsed, 2s);
    }
}

TEST(Sim, PipelinedRequestsAreAnsweredInOrder) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    client.send_raw(
        "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /quotes/STOCK_2 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::pair<const char*, int> expected[] = {{"STOCK_1", 1}, {"STOCK_2", 1}, {"STOCK_1", 2}};
    for (const auto& [symbol, seq] : expected) {
        auto reply = client.read();
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        const auto body = nlohmann::json::parse(reply.res.body());
        EXPECT_EQ(body["symbol"], symbol);
        EXPECT_EQ(body["seq"], seq);
    }
}

TEST(Sim, Http10WithoutKeepAliveIsClosedAfterTheResponse) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    client.send_raw("GET /quotes/STOCK_1 HTTP/1.0\r\n\r\n");
    auto reply = client.read();
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.res.version(), 10);
    EXPECT_FALSE(reply.res.keep_alive());
    EXPECT_EQ(client.read(2s).ec, http::error::end_of_stream);
}

TEST(Sim, MalformedAndOversizedRequestsGetAnErrorAndClose) {
    Server server(small());
    asio::io_context io;
    {
        Client client(io, server.port());
        client.send_raw("NOT HTTP AT ALL\r\n\r\n");
        auto reply = client.read();
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        EXPECT_EQ(reply.res.result(), http::status::bad_request);
        EXPECT_FALSE(reply.res.keep_alive());
    }
    {
        Client client(io, server.port());
        client.send_raw("GET /quotes/STOCK_1 HTTP/1.1\r\nX-Big: " + std::string(16 * 1024, 'a') +
                        "\r\n\r\n");
        auto reply = client.read();
        ASSERT_FALSE(reply.ec) << reply.ec.message();
        EXPECT_EQ(reply.res.result(), http::status::request_header_fields_too_large);
    }
    // Neither disturbed the server.
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_1");
    ASSERT_FALSE(reply.ec);
    EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], 1);
}

TEST(Sim, StopClosesIdleAndHungConnectionsAndRunReturns) {
    auto options = small();
    options.hung_symbols = {"STOCK_5"};
    options.latency_min = options.latency_max = 10s;  // applies to quotes only
    Server server(options);
    asio::io_context io;
    Client idle(io, server.port());
    ASSERT_FALSE(idle.get("/stats").ec);
    Client hung(io, server.port());
    Reply hung_reply;
    hung.async_get("/quotes/STOCK_5", 30s, hung_reply);
    Client slow(io, server.port());
    Reply slow_reply;
    slow.async_get("/quotes/STOCK_1", 30s, slow_reply);
    io.restart();
    io.run_for(200ms);  // both requests are with the server now

    const auto begin = Clock::now();
    EXPECT_TRUE(server.stop_and_wait(3s));
    EXPECT_LT(Clock::now() - begin, 3s);
    io.restart();
    io.run_for(2s);
    EXPECT_TRUE(hung_reply.done);
    EXPECT_TRUE(hung_reply.ec) << "no response expected";
    EXPECT_TRUE(slow_reply.done);
    EXPECT_TRUE(slow_reply.ec) << "the delayed response must not be sent after stop";
    EXPECT_TRUE(idle.read(2s).ec);
    EXPECT_EQ(server.sim().responses_written(), 0u);
}

TEST(Sim, ManyThreadsManyClientsKeepPerSymbolOrder) {
    Server server(small(4), 4);
    constexpr int kClients = 8;
    constexpr int kRequests = 250;
    std::vector<std::thread> clients;
    std::atomic<int> failures{0};
    std::atomic<std::uint64_t> ok{0};
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            asio::io_context io;
            Client client(io, server.port());
            std::map<std::string, std::uint64_t> last_seq;
            for (int i = 0; i < kRequests; ++i) {
                const std::string symbol = "STOCK_" + std::to_string((i + c) % 4);
                auto reply = client.get("/quotes/" + symbol);
                if (reply.ec || reply.res.result() != http::status::ok) {
                    ++failures;
                    continue;
                }
                const auto body = nlohmann::json::parse(reply.res.body());
                const auto seq = body["seq"].get<std::uint64_t>();
                if (seq <= last_seq[symbol] || body["symbol"] != symbol) ++failures;
                last_seq[symbol] = seq;
                ++ok;
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(ok, std::uint64_t{kClients} * kRequests);

    asio::io_context io;
    Client client(io, server.port());
    const auto stats = stats_once_settled(client, ok.load());
    EXPECT_EQ(stats["responses"], ok.load());
    std::uint64_t sum = 0;
    for (const auto& [name, count] : stats["per_symbol"].items()) {
        sum += count.get<std::uint64_t>();
        // seq numbers are dense per symbol: the next one is written + 1.
        auto reply = client.get("/quotes/" + name);
        EXPECT_EQ(nlohmann::json::parse(reply.res.body())["seq"], count.get<std::uint64_t>() + 1);
    }
    EXPECT_EQ(sum, ok.load());
}

// Under --threads N the fault table is shared by every io thread and the control API.
TEST(Sim, FaultsUnderManyThreadsKeepTheAccounting) {
    Server server(small(4), 4);
    server.sim().add_fault(R"({"kind":"status","request_ratio":0.3})");
    server.sim().add_fault(R"({"kind":"latency","min":"0ms","max":"1ms","request_ratio":0.5})");
    server.sim().add_fault(R"({"kind":"rate_limit","limit":1000000,"usage_header":"X-Used"})");
    std::atomic<bool> done{false};
    std::thread churn([&] {
        while (!done) {
            const auto id = server.sim().add_fault(R"({"kind":"body_error","request_ratio":0.5})");
            std::this_thread::sleep_for(1ms);
            server.sim().remove_fault(id);
            (void)server.sim().faults_json();
        }
    });
    constexpr int kClients = 4;
    std::vector<std::thread> clients;
    std::atomic<std::uint64_t> good{0}, faulty{0}, failures{0};
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            asio::io_context io;
            Client client(io, server.port());
            std::map<std::string, std::uint64_t> last_seq;
            for (int i = 0; i < 150; ++i) {
                const std::string symbol = "STOCK_" + std::to_string((i + c) % 4);
                auto reply = client.get("/quotes/" + symbol);
                if (reply.ec) {
                    ++failures;
                    continue;
                }
                const auto body = nlohmann::json::parse(reply.res.body(), nullptr, false);
                if (reply.res.result_int() != 200 || !body.contains("seq")) {
                    ++faulty;
                    continue;
                }
                const auto seq = body["seq"].get<std::uint64_t>();
                if (seq <= last_seq[symbol] || reply.res["X-Used"].empty()) ++failures;
                last_seq[symbol] = seq;
                ++good;
            }
        });
    }
    for (auto& t : clients) t.join();
    done = true;
    churn.join();
    EXPECT_EQ(failures, 0);
    EXPECT_GT(faulty, 0u);
    asio::io_context io;
    Client client(io, server.port());
    const auto stats = stats_once_settled(client, good.load());
    EXPECT_EQ(stats["responses"], good.load());
    EXPECT_EQ(stats["faults"]["status"].get<std::uint64_t>() +
                  stats["faults"]["body_error"].get<std::uint64_t>(),
              faulty.load());
    for (const auto& [name, count] : stats["per_symbol"].items())
        EXPECT_EQ(stats["last_seq"].value(name, std::uint64_t{0}), count.get<std::uint64_t>());
}

TEST(Sim, MaxConcurrentRequestsIsTheHighWaterMarkOfQuoteRequestsInProgress) {
    auto options = small();
    options.latency_min = 600ms;
    options.latency_max = 600ms;
    Server server(options);
    std::vector<std::thread> clients;
    for (int i = 0; i < 3; ++i)
        clients.emplace_back([&, i] {
            raw_exchange(server.port(),
                         "GET /quotes/STOCK_" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
        });
    for (auto& t : clients) t.join();
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(client.get("/quotes/STOCK_1").ec);  // one at a time
    const auto stats = stats_once_settled(client, 5);
    EXPECT_EQ(stats["max_concurrent_requests"], 3);
}

}  // namespace
