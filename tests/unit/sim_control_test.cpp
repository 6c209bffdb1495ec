// The simulator's control endpoint and its --listen parsing.
#include "sim_test_helpers.hpp"

namespace {

TEST(SimParseListen, AcceptsHostPortAndBracketedIpv6) {
    Options o;
    mdagg::sim::parse_listen("127.0.0.1:8081", o);
    EXPECT_EQ(o.host, "127.0.0.1");
    EXPECT_EQ(o.port, 8081);
    mdagg::sim::parse_listen("localhost:0", o);
    EXPECT_EQ(o.host, "localhost");
    EXPECT_EQ(o.port, 0);
    mdagg::sim::parse_listen("[::1]:65535", o);
    EXPECT_EQ(o.host, "::1");
    EXPECT_EQ(o.port, 65535);
}

TEST(SimParseListen, RejectsMalformed) {
    Options o;
    for (const char* bad : {"", "8081", "host:", ":8081", "host:65536", "host:80x", "host:-1",
                            "::1:80", "[::1]80", "[::1]:"}) {
        EXPECT_THROW(mdagg::sim::parse_listen(bad, o), std::invalid_argument) << bad;
    }
}

TEST(SimControl, AddListDeleteOverHttp) {
    Server server(with_control());
    ASSERT_NE(server.control_port(), 0);
    ASSERT_NE(server.control_port(), server.port());
    asio::io_context io;
    Client ctl(io, server.control_port());

    const auto a = add_fault(ctl, {{"kind", "status"}, {"status", 502}, {"symbols", {"STOCK_1"}}});
    const auto b = add_fault(ctl, {{"kind", "latency"}, {"min", "1ms"}, {"duration", "1m"}});
    EXPECT_EQ(b, a + 1);
    auto [status, list] = control(ctl, http::verb::get, "/control/faults");
    ASSERT_EQ(status, 200);
    ASSERT_EQ(list["faults"].size(), 2u) << list.dump();
    EXPECT_EQ(list["faults"][0]["id"], a);
    EXPECT_EQ(list["faults"][0]["kind"], "status");
    EXPECT_EQ(list["faults"][0]["spec"]["status"], 502);
    EXPECT_TRUE(list["faults"][0]["expires_in_ms"].is_null());
    EXPECT_GT(list["faults"][1]["expires_in_ms"].get<std::int64_t>(), 50'000);

    // The control listener serves no quotes; the quote listener also takes control requests.
    auto quote_on_control = ctl.get("/quotes/STOCK_1");
    EXPECT_EQ(quote_on_control.res.result(), http::status::not_found);
    Client quotes(io, server.port());
    EXPECT_EQ(quotes.get("/quotes/STOCK_1").res.result_int(), 502);
    EXPECT_EQ(control(quotes, http::verb::get, "/control/faults").second["faults"].size(), 2u);

    auto [deleted_status, deleted] =
        control(ctl, http::verb::delete_, "/control/faults/" + std::to_string(a));
    EXPECT_EQ(deleted_status, 200);
    EXPECT_EQ(deleted["deleted"], nlohmann::json::array({a}));
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/" + std::to_string(a)).first,
              404);
    EXPECT_EQ(seq_of(quotes.get("/quotes/STOCK_1")), 1u);

    add_fault(ctl, {{"kind", "hang"}, {"symbols", {"STOCK_9"}}});
    auto [clear_status, cleared] = control(ctl, http::verb::delete_, "/control/faults");
    EXPECT_EQ(clear_status, 200);
    EXPECT_EQ(cleared["deleted"].size(), 2u);
    EXPECT_TRUE(control(ctl, http::verb::get, "/control/faults").second["faults"].empty());
    EXPECT_EQ(server.sim().faults_json(), R"({"faults":[]})");
}

TEST(SimControl, BadFaultsGet400WithTheReason) {
    Server server(with_control());
    asio::io_context io;
    Client ctl(io, server.control_port());
    const std::pair<std::string, std::string> cases[] = {
        {"not json", "not valid JSON"},
        {"[1]", "JSON object"},
        {R"({"status":503})", "missing 'kind'"},
        {R"({"kind":"explode"})", "unknown kind"},
        {R"({"kind":"status","stauts":500})", "unknown key 'stauts'"},
        {R"({"kind":"status","status":200})", "'status'"},
        {R"({"kind":"status","symbols":["A"],"request_ratio":0.5})", "at most one"},
        {R"({"kind":"status","request_ratio":1.5})", "'request_ratio'"},
        {R"({"kind":"status","symbols":[]})", "'symbols'"},
        {R"({"kind":"status","duration":"5 parsecs"})", "'duration'"},
        {R"({"kind":"status","duration":5})", "'duration'"},
        {R"({"kind":"latency"})", "'min'"},
        {R"({"kind":"latency","min":"5ms","max":"1ms"})", "'max'"},
        {R"({"kind":"latency","min":"1ms","distribution":"gauss"})", "'distribution'"},
        {R"({"kind":"too_many_requests","retry_after_form":"rfc850"})", "'retry_after_form'"},
        {R"({"kind":"refuse","symbols":["STOCK_1"]})", "whole listener"},
        {R"({"kind":"rate_limit"})", "'limit'"},
        {R"({"kind":"rate_limit","limit":5,"usage_header":"Bad: header"})", "'usage_header'"},
        {R"({"kind":"oversized","size":-1})", "'size'"},
        {R"({"kind":"status","count":0})", "'count'"},
    };
    for (const auto& [body, reason] : cases) {
        auto [status, reply] = control(ctl, http::verb::post, "/control/faults", body);
        EXPECT_EQ(status, 400) << body;
        EXPECT_EQ(reply.value("error", ""), "bad fault") << body;
        EXPECT_NE(reply.value("reason", "").find(reason), std::string::npos)
            << body << " -> " << reply.dump();
    }
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/abc").first, 400);
    EXPECT_EQ(control(ctl, http::verb::delete_, "/control/faults/99").first, 404);
    EXPECT_EQ(control(ctl, http::verb::put, "/control/faults").first, 405);
    EXPECT_EQ(control(ctl, http::verb::get, "/control/nothing").first, 404);
    EXPECT_TRUE(control(ctl, http::verb::get, "/control/faults").second["faults"].empty());

    // The same checks guard the C++ API and the command line's faults.
    EXPECT_THROW(server.sim().add_fault(R"({"kind":"nope"})"), std::invalid_argument);
    asio::io_context other;
    auto options = small();
    options.faults = {R"({"kind":"status","status":"503"})"};
    EXPECT_THROW((void)Simulator(other, options), std::invalid_argument);
}

TEST(SimControl, BadInterimStatusIsRefused) {
    Server server(small());
    EXPECT_THROW(server.sim().add_fault(R"({"kind":"interim","status":101})"), std::invalid_argument);
    EXPECT_THROW(server.sim().add_fault(R"({"kind":"interim","status":102})"), std::invalid_argument);
    EXPECT_NO_THROW(server.sim().add_fault(R"({"kind":"interim","status":103})"));
}

}  // namespace
