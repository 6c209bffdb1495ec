// The simulator's faults, each on its own and mixed.
#include "sim_test_helpers.hpp"

namespace {

std::string get_request(const std::string& symbol) {
    return "GET /quotes/" + symbol + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

template <class Predicate>
bool eventually(Predicate predicate, Clock::duration limit = 10s) {
    for (const auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
        if (predicate()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return predicate();
}

TEST(SimFaults, DurationExpiresAndCountLimits) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    server.sim().add_fault(R"({"kind":"status","status":500,"duration":"300ms"})");
    EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 500);
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 200; }));
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");

    server.sim().add_fault(R"({"kind":"status","status":503,"count":2})");
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 503);
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 503);
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_2")), 1u);  // the 503s took no seq
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");
}

TEST(SimFaults, StatusKeepsTheConnectionAndTakesNoSeq) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    const auto id = server.sim().add_fault(
        R"({"kind":"status","status":503,"retry_after":"2s","symbols":["STOCK_3"]})");
    for (int i = 0; i < 3; ++i) {
        auto reply = client.get("/quotes/STOCK_3");
        ASSERT_FALSE(reply.ec);
        EXPECT_EQ(reply.res.result(), http::status::service_unavailable);
        EXPECT_EQ(reply.res["Retry-After"], "2");
        EXPECT_TRUE(reply.res.keep_alive());
        EXPECT_EQ(nlohmann::json::parse(reply.res.body())["fault"], "status");
        EXPECT_EQ(seq_of(client.get("/quotes/STOCK_4")), static_cast<std::uint64_t>(i + 1));
    }
    EXPECT_TRUE(server.sim().remove_fault(id));
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_3")), 1u);
    const auto stats = stats_once_settled(client, 4);
    EXPECT_EQ(stats["faults"]["status"], 3);
    EXPECT_EQ(stats["responses"], 4);
    EXPECT_EQ(stats["per_symbol"]["STOCK_3"], 1);
    EXPECT_EQ(stats["last_seq"]["STOCK_3"], 1);
    EXPECT_EQ(stats["connections"], 1);
}

// "Wed, 25 Nov 2026 20:16:36 GMT" -> system time; nullopt if not an IMF-fixdate.
std::optional<std::chrono::system_clock::time_point> parse_http_date(const std::string& text) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0' || text.size() != 29) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

TEST(SimFaults, TooManyRequestsWithRetryAfterInBothForms) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    auto seconds = server.sim().add_fault(R"({"kind":"too_many_requests","retry_after":"7s"})");
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result(), http::status::too_many_requests);
    EXPECT_EQ(reply.res["Retry-After"], "7");
    server.sim().remove_fault(seconds);

    server.sim().add_fault(
        R"({"kind":"too_many_requests","retry_after":"30s","retry_after_form":"http_date"})");
    const auto before = std::chrono::system_clock::now();
    reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result(), http::status::too_many_requests);
    const auto date = parse_http_date(std::string(reply.res["Retry-After"]));
    ASSERT_TRUE(date) << reply.res["Retry-After"];
    EXPECT_GE(*date, before + 29s);  // whole seconds, rounded up: never early
    EXPECT_LE(*date, std::chrono::system_clock::now() + 32s);
    EXPECT_EQ(stats_over(client)["faults"]["too_many_requests"], 2);
}

TEST(SimFaults, BanAnswersEveryRequestForItsPeriod) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    server.sim().add_fault(
        R"({"kind":"ban","status":418,"period":"600ms","symbols":["STOCK_1"],"count":1})");
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_2")), 1u);  // not selected, no ban yet
    auto trigger = client.get("/quotes/STOCK_1");
    EXPECT_EQ(trigger.res.result_int(), 418);
    EXPECT_EQ(trigger.res["Retry-After"], "1");  // 600 ms, rounded up
    auto others = client.get("/quotes/STOCK_2");  // once banned, everything is
    EXPECT_EQ(others.res.result_int(), 418);
    EXPECT_FALSE(others.res["Retry-After"].empty());
    EXPECT_NE(server.sim().faults_json().find("banned_for_ms"), std::string::npos);
    // The ban runs out; its one trigger is used, so the fault is gone too.
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_2").res.result_int() == 200; }));
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");

    server.sim().add_fault(R"({"kind":"ban","status":403,"period":"1m"})");
    EXPECT_EQ(client.get("/quotes/STOCK_5").res.result_int(), 403);
    EXPECT_EQ(client.get("/stats").res.result_int(), 200);  // the ban is on quotes only
    EXPECT_GE(stats_over(client)["faults"]["ban"], 3);
}

TEST(SimFaults, HangHoldsOnlyTheSelectedSymbols) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"hang","symbols":["STOCK_6"]})");
    asio::io_context io;
    Client hung(io, server.port());
    Client fine(io, server.port());
    Reply hung_reply, fine_reply;
    hung.async_get("/quotes/STOCK_6", 400ms, hung_reply);
    fine.async_get("/quotes/STOCK_7", 5s, fine_reply);
    io.run();
    EXPECT_EQ(hung_reply.ec, beast::error::timeout) << hung_reply.ec.message();
    ASSERT_FALSE(fine_reply.ec);
    EXPECT_EQ(seq_of(fine_reply), 1u);
    Client observer(io, server.port());
    const auto stats = stats_over(observer);
    EXPECT_EQ(stats["faults"]["hang"], 1);
    EXPECT_EQ(stats["hung_requests"], 0);  // that counter is --hung's
}

TEST(SimFaults, LatencyUniformAndLongTail) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    const auto id = server.sim().add_fault(R"({"kind":"latency","min":"40ms","max":"60ms"})");
    for (int i = 0; i < 3; ++i) {
        auto reply = client.get("/quotes/STOCK_1");
        EXPECT_EQ(reply.res.result_int(), 200);
        EXPECT_GE(reply.elapsed, 40ms);
    }
    server.sim().remove_fault(id);
    server.sim().add_fault(
        R"({"kind":"latency","distribution":"pareto","min":"5ms","max":"200ms","alpha":1.2})");
    Clock::duration longest{};
    for (int i = 0; i < 20; ++i) {
        auto reply = client.get("/quotes/STOCK_2");
        ASSERT_EQ(reply.res.result_int(), 200);
        EXPECT_GE(reply.elapsed, 5ms);
        longest = std::max(longest, reply.elapsed);
    }
    EXPECT_LT(longest, 5s);  // capped at max (plus a loaded machine's slack)
    const auto stats = stats_once_settled(client, 23);
    EXPECT_EQ(stats["faults"]["latency"], 23);
    EXPECT_EQ(stats["responses"], 23);  // a delayed quote is still a good quote
}

TEST(SimFaults, BodyErrorAndMalformedAre200sThatAreNotQuotes) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    auto id = server.sim().add_fault(R"({"kind":"body_error"})");
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result_int(), 200);
    EXPECT_EQ(nlohmann::json::parse(reply.res.body()),
              nlohmann::json::parse(R"({"code":"50011","msg":"busy"})"));
    server.sim().remove_fault(id);
    id = server.sim().add_fault(
        R"({"kind":"body_error","body":{"retCode":10006,"retMsg":"Too many visits"}})");
    EXPECT_EQ(nlohmann::json::parse(client.get("/quotes/STOCK_1").res.body())["retCode"], 10006);
    server.sim().remove_fault(id);

    id = server.sim().add_fault(R"({"kind":"malformed"})");
    reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result_int(), 200);
    EXPECT_TRUE(reply.res.keep_alive());
    EXPECT_TRUE(nlohmann::json::parse(reply.res.body(), nullptr, false).is_discarded())
        << reply.res.body();
    EXPECT_EQ(reply.res.body().rfind("{\"symbol\":\"STOCK_1\"", 0), 0u);
    server.sim().remove_fault(id);
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    const auto stats = stats_once_settled(client, 1);
    EXPECT_EQ(stats["faults"]["body_error"], 2);
    EXPECT_EQ(stats["faults"]["malformed"], 1);
}

TEST(SimFaults, TruncatedPromisesMoreThanItSends) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"truncated","symbols":["STOCK_2"]})");
    const Raw r = raw_exchange(server.port(), get_request("STOCK_2"), 5s);
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.ec, asio::error::eof) << r.ec.message();
    ASSERT_TRUE(r.complete_head()) << r.bytes;
    EXPECT_EQ(r.head().rfind("HTTP/1.1 200 OK", 0), 0u);
    const auto promised = std::stoul(r.header("Content-Length"));
    EXPECT_GT(r.body().size(), 0u);
    EXPECT_LT(r.body().size(), promised);

    asio::io_context io;
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_2");
    EXPECT_EQ(reply.ec, http::error::partial_message) << reply.ec.message();
    client.connect();
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_3")), 1u);
    EXPECT_EQ(stats_over(client)["faults"]["truncated"], 2);
}

TEST(SimFaults, ResetSendsPartOfAResponseThenRst) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"reset","after_bytes":20})");
    const Raw r = raw_exchange(server.port(), get_request("STOCK_2"), 5s);
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.ec, asio::error::connection_reset) << r.ec.message();
    EXPECT_LE(r.bytes.size(), 20u);
    EXPECT_EQ(std::string("HTTP/1.1 200 OK").rfind(r.bytes.substr(0, 15), 0), 0u) << r.bytes;
    server.sim().clear_faults();
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_2")), 1u);
    EXPECT_EQ(stats_over(client)["faults"]["reset"], 1);
}

TEST(SimFaults, SymbolRatioPicksThePredictedSymbols) {
    Server server(small(200));
    server.sim().add_fault(R"({"kind":"status","status":500,"symbol_ratio":0.25})");
    asio::io_context io;
    Client client(io, server.port());
    int picked = 0;
    for (int i = 0; i < 200; ++i) {
        const std::string name = "STOCK_" + std::to_string(i);
        const bool expected = mdagg::sim::symbol_in_ratio(name, 0.25);
        picked += expected;
        EXPECT_EQ(client.get("/quotes/" + name).res.result_int(), expected ? 500 : 200) << name;
    }
    EXPECT_GT(picked, 25);
    EXPECT_LT(picked, 75);
}

TEST(SimFaults, RequestRatioIsRoughlyTheShareAndFollowsTheSeed) {
    auto run = [](std::uint64_t seed) {
        auto options = small();
        options.seed = seed;
        Server server(options);
        server.sim().add_fault(R"({"kind":"status","request_ratio":0.3})");
        asio::io_context io;
        Client client(io, server.port());
        std::string pattern;
        for (int i = 0; i < 300; ++i)
            pattern += client.get("/quotes/STOCK_1").res.result_int() == 503 ? 'x' : '.';
        return pattern;
    };
    const auto a = run(7);
    const auto hits = std::count(a.begin(), a.end(), 'x');
    EXPECT_GT(hits, 45);
    EXPECT_LT(hits, 135);
    EXPECT_EQ(a, run(7));  // same seed, same connection order: same faults
    EXPECT_NE(a, run(8));
}

TEST(SimFaults, OldestFaultWinsAndLatencyAddsUp) {
    Server server(small());
    asio::io_context io;
    Client client(io, server.port());
    server.sim().add_fault(R"({"kind":"latency","min":"30ms"})");
    server.sim().add_fault(R"({"kind":"status","status":502,"symbols":["STOCK_1"]})");
    server.sim().add_fault(R"({"kind":"status","status":504})");
    auto reply = client.get("/quotes/STOCK_1");
    EXPECT_EQ(reply.res.result_int(), 502);
    EXPECT_GE(reply.elapsed, 30ms);
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 504);
}

// The accounting a daemon test relies on: the good responses' seqs per symbol are exactly
// 1..per_symbol, whatever faults were mixed in, and every fault is counted by kind.
TEST(SimFaults, SeqsGoToGoodResponsesOnly) {
    Server server(small(4));
    server.sim().add_fault(R"({"kind":"status","request_ratio":0.2})");
    server.sim().add_fault(R"({"kind":"body_error","request_ratio":0.2})");
    server.sim().add_fault(R"({"kind":"malformed","request_ratio":0.2})");
    server.sim().add_fault(R"({"kind":"too_many_requests","request_ratio":0.1})");
    asio::io_context io;
    Client client(io, server.port());
    std::map<std::string, std::vector<std::uint64_t>> seqs;
    std::uint64_t faulty = 0;
    for (int i = 0; i < 400; ++i) {
        const std::string symbol = "STOCK_" + std::to_string(i % 4);
        auto reply = client.get("/quotes/" + symbol);
        ASSERT_FALSE(reply.ec);
        const auto body = nlohmann::json::parse(reply.res.body(), nullptr, false);
        if (reply.res.result_int() == 200 && !body.is_discarded() && body.contains("seq"))
            seqs[symbol].push_back(body["seq"].get<std::uint64_t>());
        else
            ++faulty;
    }
    server.sim().clear_faults();
    std::uint64_t good = 0;
    for (auto& [symbol, list] : seqs) good += list.size();
    const auto stats = stats_once_settled(client, good);
    EXPECT_EQ(stats["responses"], good);
    std::uint64_t counted = 0;
    for (const auto& [kind, n] : stats["faults"].items()) counted += n.get<std::uint64_t>();
    EXPECT_EQ(counted, faulty);
    EXPECT_GT(faulty, 100u);
    for (const auto& [symbol, list] : seqs) {
        for (std::size_t i = 0; i < list.size(); ++i) ASSERT_EQ(list[i], i + 1) << symbol;
        EXPECT_EQ(stats["per_symbol"][symbol], list.size());
        EXPECT_EQ(stats["last_seq"][symbol], list.size());
    }
}

TEST(SimFaults, NoFaultKeepsThePlainPath) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"status","symbols":["STOCK_9"],"duration":"50ms"})");
    asio::io_context io;
    Client client(io, server.port());
    ASSERT_TRUE(eventually([&] { return server.sim().faults_json() == R"({"faults":[]})"; }));
    for (std::uint64_t i = 1; i <= 5; ++i) {
        auto reply = client.get("/quotes/STOCK_9");
        EXPECT_EQ(seq_of(reply), i);
        EXPECT_TRUE(reply.res.keep_alive());
        EXPECT_TRUE(reply.res["Retry-After"].empty());
    }
    const auto stats = stats_once_settled(client, 5);
    EXPECT_EQ(stats["active_faults"], 0);
    EXPECT_EQ(stats["listening"], true);
    for (const auto& [kind, n] : stats["faults"].items()) EXPECT_EQ(n, 0) << kind;
}

TEST(SimFaults, EndlessHeadersNeverFinishTheHead) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"endless_headers","interval":"20ms"})");
    const Raw r = raw_exchange(server.port(), get_request("STOCK_1"), 500ms);
    EXPECT_TRUE(r.timed_out) << r.ec.message();
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.bytes;
    EXPECT_FALSE(r.complete_head());
    EXPECT_GE(std::count(r.bytes.begin(), r.bytes.end(), '\n'), 4) << r.bytes;
    // The client went away; the server's next write fails and it lets go.
    asio::io_context io;
    Client observer(io, server.port());
    ASSERT_TRUE(eventually([&] { return stats_over(observer)["open_connections"] == 1; }));
    EXPECT_EQ(stats_over(observer)["faults"]["endless_headers"], 1);
}

TEST(SimFaults, TrickleIsAGoodQuoteSentSlowly) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"trickle","interval":"2ms","chunk":4,"count":1})");
    asio::io_context io;
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_1", 20s);
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(seq_of(reply), 1u);  // it took a seq: it is a quote
    // The body alone took this many steps (the head, more).
    EXPECT_GE(reply.elapsed, 2ms * (reply.res.body().size() / 4));
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 2u);
    const auto stats = stats_once_settled(client, 2);
    EXPECT_EQ(stats["responses"], 2);
    EXPECT_EQ(stats["faults"]["trickle"], 1);

    // A client that gives up mid-trickle costs the seq, and the stats say so.
    server.sim().add_fault(R"({"kind":"trickle","interval":"50ms","count":1})");
    EXPECT_EQ(client.get("/quotes/STOCK_1", 200ms).ec, beast::error::timeout);
    Client observer(io, server.port());
    ASSERT_TRUE(eventually([&] { return stats_over(observer)["failed_writes"] == 1; }));
    const auto after = stats_over(observer);
    EXPECT_EQ(after["last_seq"]["STOCK_1"], 3);
    EXPECT_EQ(after["per_symbol"]["STOCK_1"], 2);
    EXPECT_EQ(seq_of(observer.get("/quotes/STOCK_1")), 4u);
}

TEST(SimFaults, OversizedIsAValidBodyOfTheGivenSize) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"oversized","size":200000})");
    asio::io_context io;
    Client client(io, server.port());
    auto reply = client.get("/quotes/STOCK_1");
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.res.body().size(), 200000u);
    const auto body = nlohmann::json::parse(reply.res.body());
    EXPECT_EQ(body["symbol"], "STOCK_1");
    EXPECT_EQ(body["seq"], 0);  // never a real seq
    EXPECT_TRUE(reply.res.keep_alive());
}

TEST(SimFaults, CloseAfterNRequestsDropsTheNext) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"close_after","requests":2})");
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 2u);
    auto third = client.get("/quotes/STOCK_1");
    EXPECT_EQ(third.ec, http::error::end_of_stream) << third.ec.message();
    client.connect();
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 3u);  // nothing skipped
    EXPECT_EQ(stats_over(client)["faults"]["close_after"], 1);
}

bool can_connect(std::uint16_t port) {
    asio::io_context io;
    tcp::socket socket(io);
    beast::error_code ec;
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    return !ec;
}

TEST(SimFaults, RefuseClosesTheListenerUntilItEnds) {
    Server server(with_control());
    const auto port = server.port();
    asio::io_context io;
    Client kept(io, port);
    Client ctl(io, server.control_port());
    const auto id = add_fault(ctl, {{"kind", "refuse"}});
    ASSERT_TRUE(eventually([&] { return !can_connect(port); }));
    EXPECT_EQ(stats_over(ctl)["listening"], false);
    EXPECT_EQ(seq_of(kept.get("/quotes/STOCK_1")), 1u);  // open connections carry on
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/" + std::to_string(id)).first,
              200);
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    EXPECT_EQ(server.port(), port);
    Client fresh(io, port);
    EXPECT_EQ(seq_of(fresh.get("/quotes/STOCK_1")), 2u);

    // With a duration and drop_connections: open connections close, and it ends by itself.
    add_fault(ctl, {{"kind", "refuse"}, {"duration", "300ms"}, {"drop_connections", true}});
    EXPECT_TRUE(fresh.read(5s).ec);
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    const auto stats = stats_over(ctl);
    EXPECT_EQ(stats["faults"]["refuse"], 2);
    EXPECT_EQ(stats["listening"], true);
}

TEST(SimFaults, RestartDropsEverythingAndSeqsCarryOn) {
    Server server(with_control());
    const auto port = server.port();
    asio::io_context io;
    Client client(io, port);
    Client ctl(io, server.control_port());
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 1u);
    add_fault(ctl, {{"kind", "restart"}, {"period", "400ms"}});
    EXPECT_TRUE(client.read(5s).ec);  // dropped
    // The control plane stays up throughout.
    EXPECT_EQ(control(ctl, http::verb::get, "/control/faults").first, 200);
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    client.connect();
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_1")), 2u);
    const auto stats = stats_over(ctl);
    EXPECT_EQ(stats["faults"]["restart"], 1);
    EXPECT_EQ(stats["active_faults"], 0);
}

TEST(SimFaults, AfterDelaysTheStartAndDurationCountsFromIt) {
    Server server(with_control());
    asio::io_context io;
    Client client(io, server.port());
    const auto start = Clock::now();
    server.sim().add_fault(R"({"kind":"status","status":500,"after":"300ms","duration":"300ms"})");
    const auto listed = nlohmann::json::parse(server.sim().faults_json())["faults"][0];
    EXPECT_GT(listed["starts_in_ms"].get<int>(), 0);
    EXPECT_GT(listed["expires_in_ms"].get<int>(), listed["starts_in_ms"].get<int>());
    if (Clock::now() - start < 250ms) {
        EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 200);
    }
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 500; }));
    EXPECT_GE(Clock::now() - start, 300ms);
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 200; }));
    EXPECT_GE(Clock::now() - start, 600ms);

    // A listener fault starts late too; deleted before it starts, it never happens.
    const auto port = server.port();
    server.sim().add_fault(R"({"kind":"refuse","after":"200ms","duration":"200ms"})");
    ASSERT_TRUE(eventually([&] { return !can_connect(port); }));
    ASSERT_TRUE(eventually([&] { return can_connect(port); }));
    const auto never = server.sim().add_fault(R"({"kind":"restart","after":"200ms"})");
    EXPECT_TRUE(server.sim().remove_fault(never));
    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(stats_over(client)["faults"]["restart"], 0);
    EXPECT_EQ(stats_over(client)["faults"]["refuse"], 1);
}

TEST(SimFaults, RateLimitAnswers429ThenBansAndReportsUsage) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"rate_limit","limit":3,"window":"1m","ban_after":2,
        "ban_period":"1m","ban_status":418,"usage_header":"X-MBX-USED-WEIGHT-1M","weight":1})");
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 1; i <= 3; ++i) {
        auto reply = client.get("/quotes/STOCK_1");
        EXPECT_EQ(seq_of(reply), static_cast<std::uint64_t>(i));
        EXPECT_EQ(reply.res["X-MBX-USED-WEIGHT-1M"], std::to_string(i));
    }
    auto limited = client.get("/quotes/STOCK_1");
    EXPECT_EQ(limited.res.result_int(), 429);
    EXPECT_EQ(limited.res["X-MBX-USED-WEIGHT-1M"], "4");
    const auto retry = std::stoi(std::string(limited.res["Retry-After"]));
    EXPECT_GT(retry, 0);
    EXPECT_LE(retry, 60);
    auto banned = client.get("/quotes/STOCK_2");  // the second 429 in a row turns into a ban
    EXPECT_EQ(banned.res.result_int(), 418);
    EXPECT_EQ(banned.res["Retry-After"], "60");
    EXPECT_EQ(client.get("/quotes/STOCK_3").res.result_int(), 418);
    EXPECT_EQ(client.get("/stats").res.result_int(), 200);
    const auto stats = stats_over(client);
    EXPECT_EQ(stats["faults"]["rate_limited"], 1);
    EXPECT_EQ(stats["faults"]["ban"], 2);
    EXPECT_EQ(stats["responses"], 3);
}

TEST(SimFaults, RateLimitWindowRollsOver) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"rate_limit","limit":2,"window":"300ms"})");
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 200);
    EXPECT_EQ(client.get("/quotes/STOCK_1").res.result_int(), 200);
    auto limited = client.get("/quotes/STOCK_1");
    EXPECT_EQ(limited.res.result_int(), 429);
    EXPECT_EQ(limited.res["Retry-After"], "1");  // < 300 ms left, rounded up
    EXPECT_TRUE(limited.res["X-MBX-USED-WEIGHT-1M"].empty());  // no usage header asked for
    ASSERT_TRUE(eventually([&] { return client.get("/quotes/STOCK_1").res.result_int() == 200; }));
}

TEST(SimFaults, FaultsFromOptionsAreActiveFromStart) {
    auto options = small();
    options.faults = {R"({"kind":"status","status":500,"symbols":["STOCK_2"]})",
                      R"({"kind":"body_error","symbols":["STOCK_3"]})"};
    Server server(options);
    asio::io_context io;
    Client client(io, server.port());
    EXPECT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 500);
    EXPECT_EQ(nlohmann::json::parse(client.get("/quotes/STOCK_3").res.body())["code"], "50011");
    EXPECT_EQ(seq_of(client.get("/quotes/STOCK_4")), 1u);
    EXPECT_EQ(nlohmann::json::parse(server.sim().faults_json())["faults"].size(), 2u);
}

TEST(SimFaults, StopEndsEveryFaultAndRunReturns) {
    auto options = with_control();
    options.faults = {R"({"kind":"endless_headers","symbols":["STOCK_1"]})",
                      R"({"kind":"hang","symbols":["STOCK_2"]})",
                      R"({"kind":"trickle","interval":"1s","symbols":["STOCK_3"]})",
                      R"({"kind":"latency","min":"1m","symbols":["STOCK_4"]})",
                      R"({"kind":"status","duration":"1h","symbols":["STOCK_5"]})"};
    Server server(options);
    server.sim().add_fault(R"({"kind":"refuse","duration":"1h"})");
    std::vector<std::future<Raw>> pending;
    for (int i = 1; i <= 4; ++i)
        pending.push_back(std::async(std::launch::async, [&, i] {
            return raw_exchange(server.port(), get_request("STOCK_" + std::to_string(i)), 20s);
        }));
    std::this_thread::sleep_for(300ms);  // let the requests reach the server
    EXPECT_TRUE(server.stop_and_wait(5s));
    for (auto& p : pending) EXPECT_FALSE(p.get().timed_out);
}

TEST(SimFaults, InterimSendsA1xxBeforeAGoodQuote) {
    Server server(small());
    for (int status : {100, 103}) {
        SCOPED_TRACE(status);
        server.sim().add_fault(nlohmann::json{{"kind", "interim"}, {"status", status}, {"count", 1}}.dump());
        const auto r = raw_exchange(server.port(), "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
        const std::string interim = status == 100 ? "HTTP/1.1 100 Continue\r\n\r\n" : "HTTP/1.1 103 Early Hints\r\n";
        ASSERT_EQ(r.bytes.rfind(interim, 0), 0u) << r.bytes;
        const auto final_at = r.bytes.find("HTTP/1.1 200 OK\r\n");
        ASSERT_NE(final_at, std::string::npos) << r.bytes;
        EXPECT_NE(r.bytes.find("\"seq\":" + std::to_string(status == 100 ? 1 : 2)), std::string::npos) << r.bytes;
    }
    // An HTTP/1.0 client never gets a 1xx (RFC 9110 15.2), only the quote.
    server.sim().add_fault(R"({"kind":"interim","count":1})");
    const auto r10 = raw_exchange(server.port(), "GET /quotes/STOCK_1 HTTP/1.0\r\n\r\n", 5s);
    EXPECT_EQ(r10.bytes.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r10.bytes;
    asio::io_context io;
    Client client(io, server.port());
    const auto stats = stats_once_settled(client, 3);
    EXPECT_EQ(stats["faults"]["interim"], 3);
    EXPECT_EQ(stats["responses"], 3);
    EXPECT_EQ(stats["last_seq"]["STOCK_1"], 3);
}

}  // namespace
