// The poll module's families in /metrics.
#include <mdagg/poll.hpp>
#include <mdagg/poll_metrics.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::vector<std::string> sample_lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.rfind('#', 0) != 0) out.push_back(line);
    return out;
}

bool has_line(const std::string& text, const std::string& line) {
    const auto lines = sample_lines(text);
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

mdagg::PollerSnapshot table_row(mdagg::SourceId source, std::string symbol, std::int64_t last_success_ns) {
    mdagg::PollerSnapshot p;
    p.source = source;
    p.symbol = std::move(symbol);
    p.interval = 1s;
    p.last_success_ns = last_success_ns;
    return p;
}

}  // namespace

TEST(PollMetrics, CountersAddUpOverSources) {
    mdagg::PollCounters a, b;
    a.completed = 3;
    a.in_flight = 2;
    a.errors[static_cast<std::size_t>(mdagg::PollError::http_5xx)] = 4;
    a.latency.counts[5] = 1;
    a.latency.total = 1;
    b.completed = 5;
    b.host_paused_ticks = 7;
    b.in_flight = -1;
    b.latency.counts[5] = 2;
    b.latency.total = 2;
    a.add(b);
    EXPECT_EQ(a.completed, 8u);
    EXPECT_EQ(a.host_paused_ticks, 7u);
    EXPECT_EQ(a.in_flight, 1);
    EXPECT_EQ(a.errors[static_cast<std::size_t>(mdagg::PollError::http_5xx)], 4u);
    EXPECT_EQ(a.latency.total, 3u);
    EXPECT_EQ(a.latency.counts[5], 3u);
}

TEST(PollMetrics, SourceFamiliesReadTheirOwnFieldsAndLabelsInOrder) {
    mdagg::PollStats stats;
    stats.source_names = {"alpha", "beta"};
    stats.sources.resize(2);
    auto& beta = stats.sources[1];
    beta.completed = 1;
    beta.failed = 2;
    beta.timed_out = 3;
    beta.cancelled = 4;
    beta.skipped_ticks = 5;
    beta.throttled_ticks = 6;
    beta.paused_ticks = 7;
    beta.rate_limited_ticks = 8;
    beta.host_paused_ticks = 9;
    beta.breaker_ticks = 10;
    beta.connects = 11;
    beta.retries = 12;
    beta.in_flight = 13;
    beta.errors[static_cast<std::size_t>(mdagg::PollError::mapping)] = 14;
    beta.achieved_interval.counts[0] = 15;
    beta.achieved_interval.total = 15;
    const std::int64_t now = 1'000'000'000'000;
    std::vector<mdagg::PollerSnapshot> table{table_row(1, "X", now - 2'000'000'000), table_row(1, "Y", 0)};
    table[1].control = mdagg::PollerControl::paused;
    table[1].state = mdagg::PollerState::failed;

    std::string out;
    mdagg::PrometheusWriter w(out);
    mdagg::write_source_metrics(w, stats, table, now);
    for (const char* line : {
             R"(mdagg_source_polls_total{source="beta",outcome="completed"} 1)",
             R"(mdagg_source_polls_total{source="beta",outcome="failed"} 2)",
             R"(mdagg_source_polls_total{source="beta",outcome="timed_out"} 3)",
             R"(mdagg_source_polls_total{source="beta",outcome="cancelled"} 4)",
             R"(mdagg_source_poll_errors_total{source="beta",class="mapping"} 14)",
             R"(mdagg_source_poll_errors_total{source="alpha",class="resolve"} 0)",
             R"(mdagg_source_skipped_ticks_total{source="beta"} 5)",
             R"(mdagg_source_throttled_ticks_total{source="beta"} 6)",
             R"(mdagg_source_paused_ticks_total{source="beta"} 7)",
             R"(mdagg_source_rate_limited_ticks_total{source="beta"} 8)",
             R"(mdagg_source_host_paused_ticks_total{source="beta"} 9)",
             R"(mdagg_source_breaker_ticks_total{source="beta"} 10)",
             R"(mdagg_source_connects_total{source="beta"} 11)",
             R"(mdagg_source_retries_total{source="beta"} 12)",
             R"(mdagg_source_polls_in_flight{source="beta"} 13)",
             R"(mdagg_source_last_success_age_seconds{source="beta"} 2)",
             R"(mdagg_source_last_success_age_seconds{source="alpha"} +Inf)",
             R"(mdagg_source_pollers{source="beta",state="pending"} 1)",
             R"(mdagg_source_pollers{source="beta",state="failed"} 1)",
             R"(mdagg_source_pollers{source="beta",state="timed_out"} 0)",
             R"(mdagg_source_pollers_control{source="beta",control="active"} 1)",
             R"(mdagg_source_pollers_control{source="beta",control="paused"} 1)",
             R"(mdagg_source_pollers_control{source="alpha",control="cancelled"} 0)",
             R"(mdagg_source_poll_interval_seconds_count{source="beta"} 15)",
             R"(mdagg_source_poll_duration_seconds_count{source="beta"} 0)",
             R"(mdagg_source_tick_lateness_seconds_count{source="alpha"} 0)",
         })
        EXPECT_TRUE(has_line(out, line)) << line;
    EXPECT_NE(out.find("# HELP mdagg_source_throttled_ticks_total Ticks skipped at max_in_flight or in connect backoff.\n"
                       "# TYPE mdagg_source_throttled_ticks_total counter\n"),
              std::string::npos);
    EXPECT_NE(out.find("# TYPE mdagg_source_poll_interval_seconds histogram\n"), std::string::npos);
}

TEST(PollMetrics, SymbolFreshnessCountsSymbolsOnceAndStaleAfterThreeIntervals) {
    const std::int64_t now = 1'000'000'000'000;
    // X: one source fresh, one never polled; Y: last success 4 intervals ago; Z: never.
    const std::vector<mdagg::PollerSnapshot> table{table_row(0, "X", now - 500'000'000), table_row(1, "X", 0),
                                                   table_row(0, "Y", now - 4'000'000'000), table_row(0, "Z", 0)};
    const auto f = mdagg::symbol_freshness(table, now);
    EXPECT_EQ(f.symbols, 3u);
    EXPECT_EQ(f.stale, 2u);
}

TEST(PollMetrics, SymbolFamiliesOnlyForTheChosenPollers) {
    const std::int64_t now = 1'000'000'000'000;
    auto p = table_row(0, "BTC", now - 1'500'000'000);
    p.completed = 4;
    p.last_latency_ns = 3'000'000;
    auto never = table_row(0, "ETH", 0);
    std::string out;
    mdagg::PrometheusWriter w(out);
    mdagg::write_symbol_metrics(w, {&p, &never}, {"sim"}, now);
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_polls_total{source="sim",symbol="BTC",outcome="completed"} 4)"));
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_last_success_age_seconds{source="sim",symbol="BTC"} 1.5)"));
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_poll_latency_seconds{source="sim",symbol="BTC"} 0.003)"));
    EXPECT_TRUE(has_line(out, R"(mdagg_symbol_poll_latency_seconds{source="sim",symbol="ETH"} -1e-09)"));
    EXPECT_EQ(out.find(R"(mdagg_symbol_last_success_age_seconds{source="sim",symbol="ETH"})"), std::string::npos);
}

TEST(PollMetrics, HostFamiliesOneSeriesPerHost) {
    const auto now = std::chrono::steady_clock::now();
    mdagg::HostGuard::Status paused;
    paused.breaker = mdagg::BreakerState::open;
    paused.pause = mdagg::PauseReason::banned;
    paused.paused_until = now + 2s;
    paused.pauses_banned = 1;
    paused.breaker_opens = 3;
    paused.rate_factor = 0.5;
    std::string out;
    mdagg::PrometheusWriter w(out);
    mdagg::write_host_metrics(w, {{"a.example:8080", paused}, {"b.example", {}}}, now);
    for (const char* line : {
             R"(mdagg_host_breaker_state{host="a.example:8080",state="open"} 1)",
             R"(mdagg_host_breaker_state{host="a.example:8080",state="closed"} 0)",
             R"(mdagg_host_breaker_state{host="b.example",state="closed"} 1)",
             R"(mdagg_host_breaker_opens_total{host="a.example:8080"} 3)",
             R"(mdagg_host_paused{host="a.example:8080"} 1)",
             R"(mdagg_host_paused{host="b.example"} 0)",
             R"(mdagg_host_pause_remaining_seconds{host="a.example:8080"} 2)",
             R"(mdagg_host_pause_remaining_seconds{host="b.example"} 0)",
             R"(mdagg_host_pauses_total{host="a.example:8080",reason="banned"} 1)",
             R"(mdagg_host_pauses_total{host="a.example:8080",reason="rate_limited"} 0)",
             R"(mdagg_host_rate_factor{host="a.example:8080"} 0.5)",
         })
        EXPECT_TRUE(has_line(out, line)) << line;
}
