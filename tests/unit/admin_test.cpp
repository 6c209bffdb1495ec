#include <mdagg/admin.hpp>

#include "admission.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

namespace mdagg::admin {
namespace {

using namespace std::chrono_literals;

TEST(PrometheusWriter, FamiliesAndSamplesWithEscapedLabels) {
    std::string out;
    PrometheusWriter w(out);
    w.family("mdagg_x_total", "counter", "Things\\counted\nhere.");
    w.sample("mdagg_x_total", {{"source", "a\"b\\c\nd"}, {"class", "timeout"}}, 42);
    w.sample("mdagg_x_total", {}, 0.5);
    w.family("mdagg_age_seconds", "gauge", "Age.");
    w.sample("mdagg_age_seconds", {{"source", "s"}}, std::numeric_limits<double>::infinity());
    EXPECT_EQ(out,
              "# HELP mdagg_x_total Things\\\\counted\\nhere.\n"
              "# TYPE mdagg_x_total counter\n"
              "mdagg_x_total{source=\"a\\\"b\\\\c\\nd\",class=\"timeout\"} 42\n"
              "mdagg_x_total 0.5\n"
              "# HELP mdagg_age_seconds Age.\n"
              "# TYPE mdagg_age_seconds gauge\n"
              "mdagg_age_seconds{source=\"s\"} +Inf\n");
}

// le -> cumulative count, parsed back from the text.
std::map<std::string, double> buckets_of(const std::string& text, double& sum, double& count) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("#")) continue;
        const auto space = line.rfind(' ');
        const double value = std::stod(line.substr(space + 1));
        if (line.starts_with("h_bucket{")) {
            const auto le = line.find("le=\"");
            out[line.substr(le + 4, line.find('"', le + 4) - le - 4)] = value;
        } else if (line.starts_with("h_sum")) {
            sum = value;
        } else if (line.starts_with("h_count")) {
            count = value;
        }
    }
    return out;
}

TEST(PrometheusWriter, HistogramBucketsAreExactAndCumulative) {
    LatencyHistogram h;
    h.record(100us);   // below the first bound, 128 us
    h.record(127us);
    h.record(129us);   // in (128 us, 256 us]
    h.record(3ms);     // in (2.048 ms, 4.096 ms]
    h.record(40s);     // beyond the last bound: +Inf only
    std::string out;
    PrometheusWriter w(out);
    w.histogram("h", {{"source", "sim"}}, h.snapshot());
    double sum = 0, count = 0;
    auto b = buckets_of(out, sum, count);
    ASSERT_EQ(b.size(), 20u);  // 2^7 .. 2^25 us and +Inf
    EXPECT_EQ(b["0.000128"], 2);
    EXPECT_EQ(b["0.000256"], 3);
    EXPECT_EQ(b["0.002048"], 3);
    EXPECT_EQ(b["0.004096"], 4);
    EXPECT_EQ(b["33.554432"], 4);
    EXPECT_EQ(b["+Inf"], 5);
    EXPECT_EQ(count, 5);
    EXPECT_NEAR(sum, 40.003356, 1e-9);
    EXPECT_NE(out.find("h_bucket{source=\"sim\",le=\"+Inf\"} 5\n"), std::string::npos) << out;
}

TEST(PrometheusWriter, EmptyHistogramHasZeroBuckets) {
    std::string out;
    PrometheusWriter w(out);
    w.histogram("h", {}, LatencyHistogram{}.snapshot());
    double sum = -1, count = -1;
    auto b = buckets_of(out, sum, count);
    EXPECT_EQ(b["+Inf"], 0);
    EXPECT_EQ(sum, 0);
    EXPECT_EQ(count, 0);
}

TEST(Glob, Matches) {
    EXPECT_TRUE(glob_match("STOCK_1*", "STOCK_1"));
    EXPECT_TRUE(glob_match("STOCK_1*", "STOCK_1999"));
    EXPECT_FALSE(glob_match("STOCK_1*", "STOCK_2"));
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_TRUE(glob_match("S?OCK_*9", "STOCK_19"));
    EXPECT_FALSE(glob_match("S?OCK_*9", "STOCK_18"));
    EXPECT_TRUE(glob_match("*_*_*", "a_b_c"));
    EXPECT_FALSE(glob_match("abc", "abcd"));
    EXPECT_FALSE(glob_match("", "a"));
    EXPECT_TRUE(glob_match("a*b*c", "aXXbYYbc"));
    // Backtracking stays cheap on a hostile pattern.
    EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*b", std::string(2000, 'a')));
}

TEST(Selector, ParsesEveryKey) {
    Selector s;
    ASSERT_EQ(parse_selector(R"({"source":"sim","symbols":["A","B"],"glob":"A*","tag":"nyse"})", s), std::nullopt);
    EXPECT_EQ(s.source, "sim");
    EXPECT_EQ(s.symbols, (std::vector<std::string>{"A", "B"}));
    EXPECT_EQ(s.glob, "A*");
    EXPECT_EQ(s.tag, "nyse");
    Selector all;
    ASSERT_EQ(parse_selector(R"({"all":true})", all), std::nullopt);
    EXPECT_TRUE(all.all);
}

TEST(Selector, RejectsWhatWouldActOnEveryPollerByMistake) {
    auto error = [](std::string_view body) {
        Selector s;
        auto e = parse_selector(body, s);
        return e ? *e : std::string("(none)");
    };
    EXPECT_EQ(error("{}"), "empty selector: give source, symbols, glob or tag, or {\"all\": true}");
    EXPECT_EQ(error(R"({"all":false})"), "empty selector: give source, symbols, glob or tag, or {\"all\": true}");
    EXPECT_EQ(error(R"({"symbol":"A"})"), "unknown key \"symbol\"; valid keys: source, symbols, glob, tag, all");
    EXPECT_EQ(error(R"({"all":true,"tag":"x"})"), "\"all\" cannot be combined with other criteria");
    EXPECT_EQ(error(R"({"symbols":"A"})"), "symbols: expected a non-empty list of names");
    EXPECT_EQ(error(R"({"symbols":[]})"), "symbols: expected a non-empty list of names");
    EXPECT_EQ(error(R"({"source":""})"), "source: expected a non-empty string");
    EXPECT_EQ(error(R"({"tag":3})"), "tag: expected a non-empty string");
    EXPECT_EQ(error("not json"), "body is not valid JSON");
    EXPECT_EQ(error("[1]"), "expected a JSON object like {\"source\": \"sim\", \"tag\": \"nyse\"}");
}

TEST(Selector, MatchesEveryCriterion) {
    Selector s;
    s.source = "sim";
    s.glob = "STOCK_1*";
    s.tag = "nyse";
    auto tagged = [](std::string_view t) { return t == "nyse"; };
    auto untagged = [](std::string_view) { return false; };
    EXPECT_TRUE(s.matches("sim", "STOCK_12", tagged));
    EXPECT_FALSE(s.matches("other", "STOCK_12", tagged));
    EXPECT_FALSE(s.matches("sim", "STOCK_2", tagged));
    EXPECT_FALSE(s.matches("sim", "STOCK_12", untagged));
    Selector list;
    list.symbols = {"A", "B"};
    EXPECT_TRUE(list.matches("x", "B", untagged));
    EXPECT_FALSE(list.matches("x", "C", untagged));
    EXPECT_TRUE(Selector{}.matches("x", "C", untagged));
}

TEST(TaskQuery, DecodesParameters) {
    Selector s;
    ASSERT_EQ(parse_task_query("source=sim&symbol=STOCK_1%2A&state=paused&tag=a+b&", s), std::nullopt);
    EXPECT_EQ(s.source, "sim");
    EXPECT_EQ(s.glob, "STOCK_1*");
    EXPECT_EQ(s.state, "paused");
    EXPECT_EQ(s.tag, "a b");
    Selector bad;
    EXPECT_EQ(parse_task_query("symbol=%2", bad), "bad percent-encoding in \"symbol\"");
    EXPECT_EQ(parse_task_query("sym=x", bad), "unknown parameter \"sym\"; valid: source, symbol, tag, state");
}

struct FakeBackend : Backend {
    std::vector<std::pair<Action, Selector>> actions;
    Selector last_filter;
    std::string metrics() override { return "m 1\n"; }
    Response healthz() override { return {503, "application/json", "{}"}; }
    Response readyz() override { return {200, "application/json", "{}"}; }
    Response tasks(const Selector& f) override {
        last_filter = f;
        return {200, "application/json", "[]"};
    }
    Response control(Action a, const Selector& s) override {
        actions.emplace_back(a, s);
        return {200, "application/json", "{\"matched\":1}"};
    }
};

TEST(Routes, GetEndpoints) {
    FakeBackend b;
    auto metrics = handle({"GET", "/metrics", "", ""}, b, "");
    EXPECT_EQ(metrics.status, 200);
    EXPECT_EQ(metrics.body, "m 1\n");
    EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(handle({"GET", "/healthz", "", ""}, b, "").status, 503);
    EXPECT_EQ(handle({"GET", "/readyz", "", ""}, b, "").status, 200);
    EXPECT_EQ(handle({"GET", "/debug/tasks?source=sim&state=paused", "", ""}, b, "").status, 200);
    EXPECT_EQ(b.last_filter.source, "sim");
    EXPECT_EQ(b.last_filter.state, "paused");
    EXPECT_EQ(handle({"GET", "/debug/tasks?bogus=1", "", ""}, b, "").status, 400);
    EXPECT_EQ(handle({"POST", "/metrics", "", ""}, b, "").status, 405);
    EXPECT_EQ(handle({"GET", "/nope", "", ""}, b, "").status, 404);
}

TEST(Routes, AdminActionsNeedPostAndTheTokenWhenSet) {
    FakeBackend b;
    const std::string body = R"({"tag":"nyse"})";
    EXPECT_EQ(handle({"GET", "/admin/pause", "", body}, b, "").status, 405);
    EXPECT_EQ(handle({"POST", "/admin/stop", "", body}, b, "").status, 404);
    EXPECT_EQ(handle({"POST", "/admin/pause", "", body}, b, "").status, 200);  // no token configured
    EXPECT_EQ(handle({"POST", "/admin/pause", "", body}, b, "tok").status, 401);
    EXPECT_EQ(handle({"POST", "/admin/pause", "Bearer to", body}, b, "tok").status, 401);
    EXPECT_EQ(handle({"POST", "/admin/pause", "Bearer tokk", body}, b, "tok").status, 401);
    EXPECT_EQ(handle({"POST", "/admin/pause", "Basic tok", body}, b, "tok").status, 401);
    EXPECT_EQ(handle({"POST", "/admin/resume", "Bearer tok", body}, b, "tok").status, 200);
    EXPECT_EQ(handle({"POST", "/admin/cancel", "bearer tok", R"({"all":true})"}, b, "tok").status, 200);
    EXPECT_EQ(handle({"POST", "/admin/cancel", "Bearer tok", "{}"}, b, "tok").status, 400);
    ASSERT_EQ(b.actions.size(), 3u);  // refused requests never reach the backend
    EXPECT_EQ(b.actions[0].first, Action::pause);
    EXPECT_EQ(b.actions[1].first, Action::resume);
    EXPECT_EQ(b.actions[2].first, Action::cancel);
    EXPECT_TRUE(b.actions[2].second.all);
}


// Bytes a client sent that are not UTF-8 used to make the JSON dump of the error throw:
// no answer, a dropped connection and an error line per request.
TEST(Routes, BadBytesInQueriesAre400sWithValidJson) {
    FakeBackend b;
    for (std::string target : {"/debug/tasks?state=%FF", "/debug/tasks?source=%C3%28", "/debug/tasks?tag=%E2%82",
                               "/debug/tasks?symbol=%ED%A0%80", "/debug/tasks?symbol=%F4%90%80%80",
                               "/debug/tasks?symbol=%C0%AF", "/debug/tasks?\xFF=1"}) {
        Response r;
        ASSERT_NO_THROW(r = handle({"GET", target, "", ""}, b, "")) << target;
        EXPECT_EQ(r.status, 400) << target;
        const auto body = nlohmann::json::parse(r.body, nullptr, false);
        ASSERT_TRUE(body.is_object()) << target << ": " << r.body;
        EXPECT_TRUE(body["error"].is_string());
    }
    Selector s;
    EXPECT_EQ(parse_task_query("state=%FF", s), "\"state\" is not valid UTF-8 once percent-decoded");
    // Well-formed multi-byte text passes through to the backend.
    ASSERT_EQ(handle({"GET", "/debug/tasks?tag=%E2%82%AC%F0%9F%98%80%C3%A9", "", ""}, b, "").status, 200);
    EXPECT_EQ(b.last_filter.tag, "\u20ac\U0001F600\u00e9");
}

TEST(Routes, JsonTextReplacesBytesThatAreNotUtf8) {
    EXPECT_EQ(json_text({{"error", std::string("unknown state \"\xFF\"")}}), "{\"error\":\"unknown state \\\"\xEF\xBF\xBD\\\"\"}");
    EXPECT_EQ(json_text({{"a", 1}}), "{\"a\":1}");
}

TEST(Routes, ProbePaths) {
    EXPECT_TRUE(is_probe_path("/healthz"));
    EXPECT_TRUE(is_probe_path("/readyz?verbose=1"));
    EXPECT_FALSE(is_probe_path("/metrics"));
    EXPECT_FALSE(is_probe_path("/healthz/x"));
    EXPECT_FALSE(is_probe_path("/admin/cancel"));
}


// 64 slow clients used to hold every connection, so the probes timed out and the pod was
// restarted: one peer gets a share, and past the bounds a probe slot, one per peer.
TEST(Admission, PeersShareTheCapAndProbeSlotsAreReserved) {
    ServerOptions options;
    options.max_connections = 4;
    options.max_connections_per_peer = 2;
    options.probe_slots = 2;
    ConnectionAdmission a(options);
    using Slot = ConnectionAdmission::Slot;
    using Refusal = ConnectionAdmission::Refusal;
    Refusal why{};
    EXPECT_EQ(a.admit("10.0.0.1", why), Slot::regular);
    EXPECT_EQ(a.admit("10.0.0.1", why), Slot::regular);
    // The peer's share is taken: a probe slot, then nothing.
    EXPECT_EQ(a.admit("10.0.0.1", why), Slot::probe);
    EXPECT_EQ(a.admit("10.0.0.1", why), std::nullopt);
    EXPECT_EQ(why, Refusal::per_peer);
    EXPECT_EQ(a.admit("10.0.0.2", why), Slot::regular);
    EXPECT_EQ(a.admit("10.0.0.2", why), Slot::regular);
    // Every regular slot is taken: another peer's probe still gets in.
    EXPECT_EQ(a.admit("10.0.0.3", why), Slot::probe);
    EXPECT_EQ(a.admit("10.0.0.4", why), std::nullopt);  // both probe slots taken
    EXPECT_EQ(why, Refusal::full);
    EXPECT_EQ(a.regular_open(), 4u);
    EXPECT_EQ(a.probe_open(), 2u);
    // Releasing frees the slot for anyone; a refused peer leaves no entry behind.
    a.release("10.0.0.3", Slot::probe);
    EXPECT_EQ(a.admit("10.0.0.4", why), Slot::probe);
    a.release("10.0.0.2", Slot::regular);
    EXPECT_EQ(a.admit("10.0.0.5", why), Slot::regular);
    for (auto peer : {"10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.5"}) a.release(peer, Slot::regular);
    a.release("10.0.0.1", Slot::probe);
    a.release("10.0.0.4", Slot::probe);
    a.release("10.0.0.9", Slot::regular);  // unknown: ignored
    EXPECT_EQ(a.regular_open(), 0u);
    EXPECT_EQ(a.probe_open(), 0u);
    EXPECT_EQ(a.peers(), 0u);
}

}  // namespace
}  // namespace mdagg::admin
