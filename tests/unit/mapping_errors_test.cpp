// QuoteMapper's errors, and the body-level success checks of venues that answer errors with a 200.
#include "mapping_test_helpers.hpp"

#include <optional>
#include <string>

// ---------------------------------------------------------------------------------------------
// Errors

TEST(MappingErrors, MalformedJson) {
    for (std::string_view body :
         {""sv, " "sv, "{"sv, "}"sv, "{\"bid\":\"1\",\"ask\":\"2\""sv,
          R"({"bid":"1","ask":"2",})"sv, R"({"bid":"1","ask":"2"}x)"sv,
          R"({"bid":"1","ask":"2"}{})"sv, R"({"bid":"1" "ask":"2"})"sv,
          R"({"bid":"1","ask":NaN})"sv, R"({"bid":"1","ask":Infinity})"sv,
          R"({'bid':'1','ask':'2'})"sv, R"({bid:"1","ask":"2"})"sv,
          R"({"bid":01,"ask":2})"sv, R"({"bid":1.,"ask":2})"sv, R"({"bid":.5,"ask":2})"sv,
          R"({"bid":+1,"ask":2})"sv, R"({"bid":1e,"ask":2})"sv, R"({"bid":-,"ask":2})"sv,
          R"({"bid":"1","ask":"2"} // c)"sv, R"({"bid":"1",/*c*/"ask":"2"})"sv,
          R"({"bid":"1","ask":"2\x"})"sv, R"({"bid":"1","ask":"\u12"})"sv,
          R"({"bid":"1","ask":"\ud800"})"sv, R"({"bid":"1","ask":"\udc00\ud800"})"sv,
          R"({"bid":"1","ask":"\ud800\u0041"})"sv, "{\"bid\":\"1\",\"ask\":\"2\t\"}"sv,
          "{\"bid\":\"1\",\"ask\":\"\xC3\"}"sv, "{\"bid\":\"1\",\"ask\":\"\xC0\xAF\"}"sv,
          "{\"bid\":\"1\",\"ask\":\"\xED\xA0\x80\"}"sv, "{\"bid\":\"1\",\"ask\":\"\xF4\x90\x80\x80\"}"sv,
          "{\"bid\":\"1\",\"ask\":\"\xFF\"}"sv, "{\"bid\":\"1\",\"ask\":\"2\"}\0"sv,
          R"({"bid":tru,"ask":"2"})"sv, R"({"bid":nulll,"ask":"2"})"sv, R"({"bid":"1","ask"})"sv,
          R"({"bid":"1";"ask":"2"})"sv, R"(["bid","ask"])"sv.substr(0, 10), R"([1,])"sv,
          R"([1 2])"sv, R"({"a":[}])"sv, R"({"a":{]})"sv, "\xEF\xBB{}"sv}) {
        EXPECT_EQ(map_err(bid_ask(), body), MappingError::malformed_json)
            << "body: " << ::testing::PrintToString(std::string(body));
    }
}

TEST(MappingErrors, MalformedJsonTakesPrecedence) {
    // The body also names another symbol and lacks "ask", but it is cut short.
    FieldMap f = bid_ask();
    f.symbol = "/s";
    EXPECT_EQ(map_err(f, R"({"s":"OTHER","bid":"x")", "MINE"), MappingError::malformed_json);
}

TEST(MappingErrors, MissingField) {
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":"1"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"ask":"1"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":"1","ask":null})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"bid":null,"ask":"1"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), R"({"Bid":"1","Ask":"2"})"), MappingError::missing_field);
    EXPECT_EQ(map_err(bid_ask(), "{}"), MappingError::missing_field);
    // A mapped symbol is required too.
    FieldMap f = bid_ask();
    f.symbol = "/s";
    EXPECT_EQ(map_err(f, R"({"bid":"1","ask":"2"})", "X"), MappingError::missing_field);
    EXPECT_EQ(map_err(f, R"({"s":null,"bid":"1","ask":"2"})", "X"), MappingError::missing_field);
}

TEST(MappingErrors, BadNumber) {
    FieldMap f = bid_ask();
    f.bid_size = "/bs";
    f.seq = "/seq";
    const std::string ok = R"("bid":"1","ask":"2")";
    for (std::string extra :
         {R"("bid":"abc")", R"("bid":"")", R"("bid":" 1")", R"("bid":"1 ")", R"("bid":"NaN")",
          R"("bid":true)", R"("bid":false)", R"("bid":"0x1F")", R"("bid":"1,5")",
          R"("bid":"0.0000000000000000001")", R"("bid":1e400)", R"("bid":99999999999999999999)",
          R"("ask":"Infinity")", R"("ask":[])", R"("bs":"x")", R"("bs":true)", R"("bs":{})",
          R"("seq":"12a")", R"("seq":1.5)", R"("seq":1e3)", R"("seq":-3)", R"("seq":"-3")",
          R"("seq":"+3")", R"("seq":"")", R"("seq":9223372036854775808)", R"("seq":true)",
          R"("seq":"1.0")"}) {
        // The extra member comes first so that it wins over the valid one (first match).
        const std::string body = "{" + extra + "," + ok + "}";
        EXPECT_EQ(map_err(f, body), MappingError::bad_number) << body;
    }
}

TEST(MappingErrors, SymbolMismatch) {
    FieldMap f = bid_ask();
    f.symbol = "/s";
    EXPECT_EQ(map_err(f, R"({"s":"ETHUSDT","bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":"btcusdt","bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":"BTCUSDT ","bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":{"n":"BTCUSDT"},"bid":"1","ask":"2"})", "BTCUSDT"),
              MappingError::symbol_mismatch);
    EXPECT_EQ(map_err(f, R"({"s":true,"bid":"1","ask":"2"})", "true"),
              MappingError::symbol_mismatch);
    // Checked before the prices: a quote for another symbol says so even if it lacks fields.
    EXPECT_EQ(map_err(f, R"({"s":"ETHUSDT"})", "BTCUSDT"), MappingError::symbol_mismatch);
    // A numeric symbol compares by its text.
    EXPECT_FALSE(map_err(f, R"({"s":7,"bid":"1","ask":"2"})", "7"));
    // Kraken answers XBTUSD with key XXBTZUSD; with no symbol pointer nothing is checked.
    EXPECT_FALSE(map_err(bid_ask("/result/*/b/0", "/result/*/a/0"), kraken_body, "XBTUSD"));
}

TEST(MappingErrors, OutputUntouchedOnError) {
    QuoteMapper m(sim_map());
    Quote q = map_ok(m, sim_body, "STOCK_7");
    const Quote before = q;
    EXPECT_EQ(m.map(R"({"symbol":"STOCK_7","bidPrice":"x","askPrice":"1"})", "STOCK_7", q),
              MappingError::bad_number);
    EXPECT_EQ(q.bid, before.bid);
    EXPECT_EQ(q.seq, before.seq);
    EXPECT_EQ(q.exchange_time_ns, before.exchange_time_ns);
}

TEST(MappingErrors, Category) {
    const std::error_code ec = MappingError::bad_timestamp;
    EXPECT_STREQ(ec.category().name(), "mdagg.mapping");
    EXPECT_EQ(&ec.category(), &mapping_category());
    EXPECT_EQ(ec, make_error_code(MappingError::bad_timestamp));
    EXPECT_NE(ec, make_error_code(MappingError::bad_number));
    EXPECT_EQ(ec.value(), static_cast<int>(MappingError::bad_timestamp));
    std::vector<std::string> messages;
    for (auto e : {MappingError::malformed_json, MappingError::missing_field,
                   MappingError::bad_number, MappingError::bad_timestamp,
                   MappingError::symbol_mismatch, MappingError::body_error}) {
        messages.push_back(make_error_code(e).message());
    }
    for (std::size_t i = 0; i < messages.size(); ++i) {
        EXPECT_FALSE(messages[i].empty());
        for (std::size_t j = i + 1; j < messages.size(); ++j) EXPECT_NE(messages[i], messages[j]);
    }
    EXPECT_NE(messages[0].find("JSON"), std::string::npos);
    EXPECT_FALSE(mapping_category().message(999).empty());
    // A success is a default error_code, not a category member.
    EXPECT_FALSE(std::error_code());
}

// ---------------------------------------------------------------------------------------------
// Body-level success checks: venues that answer errors with a 200

FieldMap with_success(FieldMap f, std::string pointer, std::optional<std::string> equals, bool empty = false) {
    f.success = SuccessCheck{std::move(pointer), std::move(equals), empty};
    return f;
}

TEST(MappingSuccess, OkxStringCodeMustEqualZero) {
    FieldMap f = with_success(bid_ask("/data/0/bidPx", "/data/0/askPx"), "/code", "0");
    EXPECT_TRUE(Exact(map_ok(f, okx_body).bid, "66260.2"));
    // The error body has no prices: it must say body_error, not missing_field.
    EXPECT_EQ(map_err(f, R"({"code":"50011","msg":"Too Many Requests","data":[]})"),
              MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"msg":"no code at all","data":[{"bidPx":"1","askPx":"2"}]})"),
              MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"code":null,"data":[{"bidPx":"1","askPx":"2"}]})"), MappingError::body_error);
    // Malformed JSON stays malformed, whatever the check.
    EXPECT_EQ(map_err(f, R"({"code":"0",)"), MappingError::malformed_json);
}

TEST(MappingSuccess, BybitNumericCodeMatchesItsText) {
    FieldMap f = with_success(bid_ask("/result/list/0/bid1Price", "/result/list/0/ask1Price"), "/retCode", "0");
    EXPECT_TRUE(Exact(map_ok(f, bybit_body).ask, "66782.3"));
    EXPECT_EQ(map_err(f, R"({"retCode":10006,"retMsg":"Too many visits!","result":{}})"),
              MappingError::body_error);
    // A code that is an object is no match for "0".
    EXPECT_EQ(map_err(f, R"({"retCode":{"v":0},"result":{"list":[{"bid1Price":"1","ask1Price":"2"}]}})"),
              MappingError::body_error);
}

TEST(MappingSuccess, KrakenEmptyErrorArray) {
    FieldMap f = with_success(bid_ask("/result/*/b/0", "/result/*/a/0"), "/error", std::nullopt, true);
    EXPECT_TRUE(Exact(map_ok(f, kraken_body).bid, "30300.00000"));
    EXPECT_EQ(map_err(f, R"({"error":["EAPI:Rate limit exceeded"]})"), MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"error":[[]],"result":{"X":{"a":["2"],"b":["1"]}}})"), MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"error":{"k":1},"result":{"X":{"a":["2"],"b":["1"]}}})"), MappingError::body_error);
    EXPECT_EQ(map_err(f, R"({"error":"EGeneral:Internal error"})"), MappingError::body_error);
    // Absent, null, "" and {} all mean no error.
    for (auto body : {R"({"result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"error":null,"result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"error":"","result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"error":{},"result":{"X":{"a":["2"],"b":["1"]}}})"sv,
                      R"({"result":{"X":{"a":["2"],"b":["1"]}},"error":[ ]})"sv})
        EXPECT_TRUE(Exact(map_ok(f, body).bid, "1")) << body;
}

TEST(MappingSuccess, ErrorInANestedSiblingDoesNotLeakIntoTheCheck) {
    // Only the success container's own members count, not those of a container beside it.
    FieldMap f = with_success(bid_ask("/q/bid", "/q/ask"), "/error", std::nullopt, true);
    EXPECT_TRUE(Exact(map_ok(f, R"({"error":[],"q":{"bid":"1","ask":"2","error":["x"]}})").ask, "2"));
    QuoteMapper m(f);
    Quote q;
    EXPECT_EQ(m.map(R"({"error":["busy"]})", "", q), MappingError::body_error);
    // The next body is judged on its own.
    EXPECT_FALSE(m.map(R"({"error":[],"q":{"bid":"1","ask":"2"}})", "", q));
}
