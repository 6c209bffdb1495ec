// Several quote listeners in one simulator (a venue's mirrors): one book, one seq per symbol,
// faults per listener, and the control API's way to reach each listener's faults.
#include "listeners.hpp"
#include "sim_test_helpers.hpp"

namespace {

using mdagg::sim::detail::ListenerPath;
using mdagg::sim::detail::parse_listener_path;
using mdagg::sim::detail::split_fault_target;

Options mirrors(std::size_t extra) {
    auto o = with_control();
    for (std::size_t i = 0; i < extra; ++i) o.more_listeners.push_back({"127.0.0.1", 0});
    return o;
}

TEST(SimListeners, FaultTargetKeyPicksTheListenerAndIsStripped) {
    auto plain = split_fault_target(R"({"kind":"hang"})", 3);
    EXPECT_EQ(plain.listener, 0u);
    EXPECT_EQ(plain.fault, R"({"kind":"hang"})");
    auto second = split_fault_target(R"({"kind":"refuse","listener":2})", 3);
    EXPECT_EQ(second.listener, 2u);
    EXPECT_EQ(nlohmann::json::parse(second.fault), nlohmann::json({{"kind", "refuse"}}));
    for (const char* bad : {R"({"kind":"hang","listener":3})", R"({"kind":"hang","listener":-1})",
                            R"({"kind":"hang","listener":"1"})", R"({"kind":"hang","listener":1.5})"}) {
        EXPECT_THROW(split_fault_target(bad, 3), std::invalid_argument) << bad;
    }
    // Not JSON: left to the fault parser, which says why.
    EXPECT_EQ(split_fault_target(R"(nope "listener")", 3).fault, R"(nope "listener")");
}

TEST(SimListeners, ControlPathsForwardToTheListener) {
    auto p = parse_listener_path("/control/listeners/1/faults/7", 2);
    EXPECT_EQ(p.kind, ListenerPath::Kind::forward);
    EXPECT_EQ(p.listener, 1u);
    EXPECT_EQ(p.target, "/control/faults/7");
    p = parse_listener_path("/control/listeners/0/faults?x=1", 2);
    EXPECT_EQ(p.kind, ListenerPath::Kind::forward);
    EXPECT_EQ(p.target, "/control/faults?x=1");
    EXPECT_EQ(parse_listener_path("/control/listeners", 2).kind, ListenerPath::Kind::list);
    EXPECT_EQ(parse_listener_path("/control/listeners/", 2).kind, ListenerPath::Kind::list);
    for (const char* bad : {"/control/listeners/2/faults", "/control/listeners/x/faults",
                            "/control/listeners/1", "/control/listeners//faults"}) {
        EXPECT_EQ(parse_listener_path(bad, 2).kind, ListenerPath::Kind::bad) << bad;
    }
    EXPECT_EQ(parse_listener_path("/control/faults", 2).kind, ListenerPath::Kind::not_listener);
    EXPECT_EQ(parse_listener_path("/control/listenersX", 2).kind,
              ListenerPath::Kind::not_listener);
}

TEST(SimListeners, SecondListenAddsAListener) {
    Options o;
    mdagg::sim::parse_listen("127.0.0.1:9000", o);
    mdagg::sim::add_listener("[::1]:9001", o);
    mdagg::sim::add_listener("localhost:0", o);
    ASSERT_EQ(o.more_listeners.size(), 2u);
    EXPECT_EQ(o.port, 9000);
    EXPECT_EQ(o.more_listeners[0].host, "::1");
    EXPECT_EQ(o.more_listeners[0].port, 9001);
    EXPECT_EQ(o.more_listeners[1].host, "localhost");
    EXPECT_THROW(mdagg::sim::add_listener("nope", o), std::invalid_argument);
}

TEST(SimListeners, OneBookOneSeqPerSymbolAcrossListeners) {
    Server server(mirrors(2));
    ASSERT_EQ(server.sim().listeners(), 3u);
    asio::io_context io;
    std::vector<std::unique_ptr<Client>> clients;
    for (std::size_t i = 0; i < 3; ++i) {
        ASSERT_NE(server.sim().port(i), 0);
        for (std::size_t j = 0; j < i; ++j) EXPECT_NE(server.sim().port(i), server.sim().port(j));
        clients.push_back(std::make_unique<Client>(io, server.sim().port(i)));
    }
    // Round-robin over the mirrors: the seq of one symbol keeps counting up.
    for (std::uint64_t n = 1; n <= 6; ++n) EXPECT_EQ(seq_of(clients[n % 3]->get("/quotes/STOCK_3")), n);
    Client ctl(io, server.control_port());
    auto stats = stats_once_settled(ctl, 6);
    EXPECT_EQ(stats["responses"], 6);
    EXPECT_EQ(stats["per_symbol"]["STOCK_3"], 6);
    EXPECT_EQ(stats["last_seq"]["STOCK_3"], 6);
    ASSERT_EQ(stats["listeners"].size(), 3u) << stats.dump();
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(stats["listeners"][i]["index"], i);
        EXPECT_EQ(stats["listeners"][i]["port"], server.sim().port(i));
        EXPECT_EQ(stats["listeners"][i]["responses"], 2);
        EXPECT_EQ(stats["listeners"][i]["listening"], true);
    }
    // Any listener reports them all.
    EXPECT_EQ(stats_over(*clients[2])["responses"], 6);
    EXPECT_EQ(server.sim().responses_written(), 6u);
}

TEST(SimListeners, FaultsHitOnlyTheirListener) {
    auto options = mirrors(1);
    options.faults.push_back(R"({"kind":"status","status":502,"listener":1})");
    Server server(std::move(options));
    asio::io_context io;
    Client ctl(io, server.control_port());
    Client first(io, server.sim().port(0));
    Client second(io, server.sim().port(1));
    EXPECT_EQ(first.get("/quotes/STOCK_1").res.result_int(), 200);
    EXPECT_EQ(second.get("/quotes/STOCK_1").res.result_int(), 502);
    EXPECT_TRUE(control(ctl, http::verb::get, "/control/faults").second["faults"].empty());
    auto [status, listed] = control(ctl, http::verb::get, "/control/listeners/1/faults");
    EXPECT_EQ(status, 200);
    ASSERT_EQ(listed["faults"].size(), 1u) << listed.dump();
    const auto id = listed["faults"][0]["id"].get<std::uint64_t>();

    // A listener's own API serves its own faults.
    EXPECT_EQ(control(second, http::verb::get, "/control/faults").second["faults"].size(), 1u);
    EXPECT_EQ(control(ctl, http::verb::delete_,
                      "/control/listeners/1/faults/" + std::to_string(id)).first, 200);
    EXPECT_EQ(seq_of(second.get("/quotes/STOCK_1")), 2u);

    // POST through the path, and a latency fault on listener 0 leaves listener 1 fast.
    auto [posted, body] = control(ctl, http::verb::post, "/control/listeners/0/faults",
                                  R"({"kind":"status","status":503,"symbols":["STOCK_2"]})");
    EXPECT_EQ(posted, 201) << body.dump();
    EXPECT_EQ(first.get("/quotes/STOCK_2").res.result_int(), 503);
    EXPECT_EQ(second.get("/quotes/STOCK_2").res.result_int(), 200);

    EXPECT_EQ(control(ctl, http::verb::get, "/control/listeners/5/faults").first, 404);
    auto [list_status, list] = control(ctl, http::verb::get, "/control/listeners");
    EXPECT_EQ(list_status, 200);
    ASSERT_EQ(list["listeners"].size(), 2u);
    EXPECT_EQ(list["listeners"][1]["port"], server.sim().port(1));
}

TEST(SimListeners, RefuseClosesOneListenerOnly) {
    Server server(mirrors(1));
    asio::io_context io;
    const auto refused_port = server.sim().port(1);
    const auto id = server.sim().add_fault(R"({"kind":"refuse","listener":1})");
    auto listening = [&](std::size_t i) {
        Client ctl(io, server.control_port());
        return stats_over(ctl)["listeners"][i]["listening"].get<bool>();
    };
    for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline && listening(1);)
        std::this_thread::sleep_for(5ms);
    EXPECT_FALSE(listening(1));
    EXPECT_TRUE(listening(0));
    const auto refused = raw_exchange(refused_port, "GET /quotes/STOCK_1 HTTP/1.1\r\nHost: x\r\n\r\n", 2s);
    EXPECT_EQ(refused.ec, asio::error::connection_refused) << refused.ec.message();
    Client first(io, server.sim().port(0));
    EXPECT_EQ(seq_of(first.get("/quotes/STOCK_1")), 1u);

    EXPECT_TRUE(server.sim().remove_fault(1, id));
    for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline && !listening(1);)
        std::this_thread::sleep_for(5ms);
    Client second(io, refused_port);
    EXPECT_EQ(seq_of(second.get("/quotes/STOCK_1")), 2u);
    Client ctl(io, server.control_port());
    EXPECT_EQ(stats_over(ctl)["listeners"][1]["refused"], 1);
    EXPECT_EQ(stats_over(ctl)["faults"]["refuse"], 1);
}

}  // namespace
