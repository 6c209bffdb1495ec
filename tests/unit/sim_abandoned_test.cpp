// The simulator's accounting for hedged clients (issue 15): a request whose client closed the
// connection while a latency fault held the answer gets no answer and is counted as
// abandoned, not as a response, so a test can match the simulator's responses with the
// answers the client read (records plus losers it read and dropped).
#include "sim_test_helpers.hpp"

TEST(SimAbandoned, AClientThatClosesDuringADelayGetsNoAnswerAndIsCountedAbandoned) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"latency","min":"300ms"})");
    asio::io_context io;
    {
        Client quitter(io, server.port());
        Reply reply;
        quitter.async_get("/quotes/STOCK_1", 50ms, reply);  // gives up (closes) after 50 ms
        io.run();
        EXPECT_EQ(reply.ec, beast::error::timeout) << reply.ec.message();
    }
    Client observer(io, server.port());
    nlohmann::json stats;
    for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline;) {  // the 300 ms delay ends
        stats = stats_over(observer);
        if (stats["abandoned_requests"] == 1) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(stats["abandoned_requests"], 1) << stats.dump();
    EXPECT_EQ(stats["responses"], 0) << stats.dump();
    EXPECT_EQ(stats["failed_writes"], 0) << stats.dump();
    EXPECT_EQ(stats["listeners"][0]["abandoned_requests"], 1) << stats.dump();
}

TEST(SimAbandoned, AClientThatWaitsGetsItsDelayedAnswer) {
    Server server(small());
    server.sim().add_fault(R"({"kind":"latency","distribution":"pareto","min":"2ms","max":"40ms","alpha":1.5})");
    asio::io_context io;
    Client client(io, server.port());
    for (int i = 0; i < 5; ++i) ASSERT_EQ(client.get("/quotes/STOCK_2").res.result_int(), 200);
    const auto stats = stats_once_settled(client, 5);
    EXPECT_EQ(stats["responses"], 5) << stats.dump();
    EXPECT_EQ(stats["abandoned_requests"], 0) << stats.dump();
}
