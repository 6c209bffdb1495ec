// QuoteMapper's timestamps (units, RFC 3339 fields, bad values) and parse_rfc3339_ns.
#include "mapping_test_helpers.hpp"

// ---------------------------------------------------------------------------------------------
// Timestamps

TEST(MappingTime, UnitsFromNumbersAndStrings) {
    struct Case {
        TimeUnit unit;
        std::string value;
        std::int64_t ns;
    };
    const Case cases[] = {
        {TimeUnit::s, "1700000000", 1700000000000000000},
        {TimeUnit::s, "\"1700000000\"", 1700000000000000000},
        {TimeUnit::ms, "1764000000000", 1764000000000000000},
        {TimeUnit::ms, "\"1774805577108\"", 1774805577108000000},
        {TimeUnit::us, "1764000000000123", 1764000000000123000},
        {TimeUnit::ns, "\"1617827221349730300\"", 1617827221349730300},
        {TimeUnit::ns, "9223372036854775807", 9223372036854775807},
        // Fractions convert exactly; digits finer than a nanosecond are truncated.
        {TimeUnit::s, "1700000000.123", 1700000000123000000},
        {TimeUnit::s, "\"1700000000.123456789\"", 1700000000123456789},
        {TimeUnit::ms, "1764000000000.5", 1764000000000500000},
        {TimeUnit::ns, "1617827221349730300.9", 1617827221349730300},
        {TimeUnit::s, "1.7e9", 1700000000000000000},
        {TimeUnit::ms, "1.5e3", 1500000000},
        {TimeUnit::s, "1e-9", 1},
        {TimeUnit::s, "0.0000000009", 0},
        {TimeUnit::us, "\"0001764000000000123\"", 1764000000000123000},
        {TimeUnit::ms, "0", 0},
    };
    for (const Case& c : cases) {
        const std::string body = R"({"bid":"1","ask":"2","t":)" + c.value + "}";
        EXPECT_EQ(map_ok(with_time("/t", c.unit), body).exchange_time_ns, c.ns) << body;
    }
}

TEST(MappingTime, Rfc3339Field) {
    const auto t = [](std::string_view s) {
        return R"({"bid":"1","ask":"2","t":")" + std::string(s) + "\"}";
    };
    const FieldMap f = with_time("/t", TimeUnit::rfc3339);
    EXPECT_EQ(map_ok(f, t("2022-08-17T12:09:34.055031265+02:00")).exchange_time_ns,
              1660730974055031265);
    EXPECT_EQ(map_err(f, t("2022-13-17T10:09:34Z")), MappingError::bad_timestamp);
    EXPECT_EQ(map_err(f, t("1969-12-31T23:59:59Z")), MappingError::bad_timestamp);
    EXPECT_EQ(map_err(f, R"({"bid":"1","ask":"2","t":1660730974})"), MappingError::bad_timestamp);
}

TEST(MappingTime, BadTimestamps) {
    struct Case {
        TimeUnit unit;
        std::string value;
    };
    const Case cases[] = {
        {TimeUnit::ms, "\"abc\""},
        {TimeUnit::ms, "\"\""},
        {TimeUnit::ms, "\" 1764000000000\""},
        {TimeUnit::ms, "true"},
        {TimeUnit::ms, "{}"},
        {TimeUnit::ms, "[1]"},
        {TimeUnit::ms, "-1"},
        {TimeUnit::s, "\"-5\""},
        {TimeUnit::s, "9999999999999"},               // * 1e9 overflows int64
        {TimeUnit::ms, "9223372036854776"},           // * 1e6 overflows
        {TimeUnit::ns, "9223372036854775808"},        // beyond int64
        {TimeUnit::ns, "99999999999999999999999999"},
        {TimeUnit::ms, "1e400"},
        {TimeUnit::ms, "\"2022-08-17T10:09:34Z\""},   // RFC 3339 text for a numeric unit
    };
    for (const Case& c : cases) {
        const std::string body = R"({"bid":"1","ask":"2","t":)" + c.value + "}";
        EXPECT_EQ(map_err(with_time("/t", c.unit), body), MappingError::bad_timestamp) << body;
    }
}

// ---------------------------------------------------------------------------------------------
// parse_rfc3339_ns

TEST(Rfc3339, ValidTimes) {
    EXPECT_EQ(parse_rfc3339_ns("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T10:09:34.055031265Z"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2020-03-20T00:22:57.833Z"), 1584663777833000000);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T12:09:34.055031265+02:00"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T10:09:34-05:30"), 1660750774000000000);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T04:39:34-05:30"), 1660730974000000000);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17T10:09:34.055031265-00:00"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2022-08-17t10:09:34.055031265z"), 1660730974055031265);
    EXPECT_EQ(parse_rfc3339_ns("2020-03-20T00:22:57.8Z"), 1584663777800000000);
    EXPECT_EQ(parse_rfc3339_ns("2020-03-20T00:22:57.000000001Z"), 1584663777000000001);
    EXPECT_EQ(parse_rfc3339_ns("1969-12-31T23:59:59.999999999Z"), -1);
    EXPECT_EQ(parse_rfc3339_ns("2024-02-29T12:00:00Z"), 1709208000000000000);
    EXPECT_EQ(parse_rfc3339_ns("2000-02-29T00:00:00Z"), 951782400000000000);
    // A leap second counts as the next second.
    EXPECT_EQ(parse_rfc3339_ns("2016-12-31T23:59:60Z"), 1483228800000000000);
    // Day rolls back across midnight through the offset.
    EXPECT_EQ(parse_rfc3339_ns("2017-01-01T05:30:00+05:30"), 1483228800000000000);
}

TEST(Rfc3339, Int64Boundaries) {
    EXPECT_EQ(parse_rfc3339_ns("2262-04-11T23:47:16.854775807Z"),
              std::numeric_limits<std::int64_t>::max());
    EXPECT_FALSE(parse_rfc3339_ns("2262-04-11T23:47:16.854775808Z"));
    EXPECT_EQ(parse_rfc3339_ns("1677-09-21T00:12:43.145224192Z"),
              std::numeric_limits<std::int64_t>::min());
    EXPECT_FALSE(parse_rfc3339_ns("1677-09-21T00:12:43.145224191Z"));
    EXPECT_FALSE(parse_rfc3339_ns("9999-12-31T23:59:59Z"));
    EXPECT_FALSE(parse_rfc3339_ns("0000-01-01T00:00:00Z"));
}

TEST(Rfc3339, Rejects) {
    for (std::string_view bad : {
             ""sv,
             "2022-08-17"sv,
             "2022-08-17T10:09:34"sv,            // no offset
             "2022-13-17T10:09:34Z"sv,           // month 13
             "2022-00-17T10:09:34Z"sv,
             "2022-08-00T10:09:34Z"sv,
             "2022-08-32T10:09:34Z"sv,
             "2023-02-29T10:09:34Z"sv,           // not a leap year
             "2022-02-30T10:09:34Z"sv,
             "2100-02-29T10:09:34Z"sv,           // century, not leap
             "1900-02-29T10:09:34Z"sv,
             "2022-04-31T10:09:34Z"sv,
             "2022-08-17T24:00:00Z"sv,
             "2022-08-17T10:60:34Z"sv,
             "2022-08-17T10:09:61Z"sv,
             "2022-08-17T10:09:34.Z"sv,          // '.' without digits
             "2022-08-17T10:09:34.0550312651Z"sv,  // 10 fraction digits
             "2022-08-17 10:09:34Z"sv,
             "2022-08-17X10:09:34Z"sv,
             "22-08-17T10:09:34Z"sv,
             "2022-8-17T10:09:34Z"sv,
             "2022-08-17T10:9:34Z"sv,
             "2022/08/17T10:09:34Z"sv,
             "2022-08-17T10:09:34+2:00"sv,
             "2022-08-17T10:09:34+0200"sv,
             "2022-08-17T10:09:34+24:00"sv,
             "2022-08-17T10:09:34+02:60"sv,
             "2022-08-17T10:09:34ZZ"sv,
             "2022-08-17T10:09:34Z "sv,
             " 2022-08-17T10:09:34Z"sv,
             "2022-08-17T10:09:34+02:00Z"sv,
             "+2022-08-17T10:09:34Z"sv,
             "2022-08-17T10:09:34.-5Z"sv,
             "2022-08-17T10:09:34\0Z"sv,
         }) {
        EXPECT_FALSE(parse_rfc3339_ns(bad)) << '"' << bad << '"';
    }
}
