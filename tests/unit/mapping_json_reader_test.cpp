// The mapper's JSON reader agrees with nlohmann::json on what is valid JSON.
#include "mapping_test_helpers.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <random>
#include <string>
#include <vector>

// ---------------------------------------------------------------------------------------------
// The JSON reader agrees with nlohmann::json on what is valid JSON

namespace {

// nullopt where nlohmann cannot judge the grammar: it stops at a NUL byte as if the input
// ended there, and it aborts on a number beyond double's range (out_of_range 406) before
// reading the rest. The mapper follows RFC 8259 on both.
std::optional<bool> nlohmann_valid(const std::string& body) {
    try {
        const auto j = nlohmann::json::parse(body);
        (void)j;
        if (body.find('\0') != std::string::npos) return std::nullopt;
        return true;
    } catch (const nlohmann::json::out_of_range& e) {
        if (e.id == 406) return std::nullopt;
        return false;
    } catch (const nlohmann::json::exception&) {
        return false;
    }
}

}  // namespace

TEST(MappingJsonReader, AgreesWithNlohmannOnMutatedBodies) {
    const std::vector<std::string> seeds = {
        std::string(binance_body), std::string(coinbase_body), std::string(kraken_body),
        std::string(okx_body), std::string(bybit_body), std::string(alpaca_body),
        std::string(polygon_body), std::string(sim_body),
        R"({"s":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t","n":[-0,0.5e+10,-1E-2,true,false,null,{}]})",
        "{\"utf8\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBF\xF4\x8F\xBF\xBF\"}",
        "[]", "0", "\"x\"", " [ 1 , { } ] ",
    };
    // Bytes that matter to a JSON lexer, plus bytes that start or break UTF-8 sequences.
    const std::string alphabet = "{}[]:,\"\\/ \t\n0123456789.-+eEtrufalsn\x01\x7f\x80\xbf\xc2\xe0\xed\xf0\xf4\xff u";
    std::mt19937_64 rng(1234);
    QuoteMapper m(bid_ask("/bid", "/ask"));
    int disagreements = 0, invalid = 0, undecided = 0;
    for (int i = 0; i < 60000; ++i) {
        std::string body = seeds[rng() % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const std::size_t pos = body.empty() ? 0 : rng() % (body.size() + 1);
            const char c = alphabet[rng() % alphabet.size()];
            switch (rng() % 4) {
            case 0:
                if (pos < body.size()) body[pos] = c;
                break;
            case 1: body.insert(pos, 1, c); break;
            case 2:
                if (pos < body.size()) body.erase(pos, 1);
                break;
            default: body.resize(pos); break;  // truncation
            }
        }
        Quote q;
        const bool ours = m.map(body, "", q) != MappingError::malformed_json;
        const std::optional<bool> theirs = nlohmann_valid(body);
        if (!theirs) {
            ++undecided;
            continue;
        }
        EXPECT_EQ(ours, *theirs) << "body: " << ::testing::PrintToString(body);
        if (ours != *theirs && ++disagreements > 20) break;
        if (!*theirs) ++invalid;
    }
    EXPECT_LT(undecided, 1000);
    RecordProperty("invalid", invalid);
    RecordProperty("undecided", undecided);
    // The mutations must exercise both outcomes for the comparison to mean anything.
    EXPECT_GT(invalid, 10000);
    EXPECT_LT(invalid, 55000);
}

TEST(MappingJsonReader, StringScanFindsEachSpecialByteAtEveryOffsetOfAWord) {
    // Plain runs are skipped 8 bytes at a time: put each byte that ends or interrupts a run at
    // every offset of the first three words of a key and of a value, and require nlohmann's
    // verdict and, when valid, the exact decoded content (it must equal the symbol expected).
    const std::vector<std::string> specials = {"\"", "\\\\", "\\n", "\\u00e9", "\x01", "\x1f", " ", "\x7f",
                                               "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x80", "\xff"};
    FieldMap f = bid_ask("/bid", "/ask");
    f.symbol = "/sym";
    QuoteMapper m(f);
    int valid = 0;
    for (const auto& special : specials) {
        for (std::size_t offset = 0; offset < 24; ++offset) {
            const std::string text = std::string(offset, 'a') + special + std::string(9, 'b');
            for (const bool in_key : {false, true}) {
                const std::string body = in_key ? R"({")" + text + R"(":1,"sym":"X","bid":"1","ask":"2"})"
                                                : R"({"bid":"1","ask":"2","sym":")" + text + R"("})";
                const std::optional<bool> theirs = nlohmann_valid(body);
                ASSERT_TRUE(theirs.has_value());
                std::string expected = "X";
                if (*theirs && !in_key) expected = nlohmann::json::parse(body)["sym"].get<std::string>();
                Quote q;
                const auto ec = m.map(body, expected, q);
                EXPECT_EQ(ec != MappingError::malformed_json, *theirs) << ::testing::PrintToString(body);
                if (*theirs) {
                    EXPECT_FALSE(ec) << ::testing::PrintToString(body) << ": " << ec.message();
                    ++valid;
                }
            }
        }
    }
    EXPECT_GT(valid, 300);  // both verdicts occur: the comparison means something
    EXPECT_LT(valid, 13 * 24 * 2);
}
