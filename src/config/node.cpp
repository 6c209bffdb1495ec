#include "detail.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <cctype>
#include <limits>

namespace mdagg::config_detail {

namespace {

std::string quoted(std::string_view text) {
    constexpr std::size_t max_shown = 40;
    std::string out = "\"";
    out += text.substr(0, max_shown);
    if (text.size() > max_shown) out += "...";
    out += '"';
    return out;
}

// Case and '-'/'_' differences are the commonest typos in keys; compare without them.
std::string normalized(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (c == '-') c = '_';
    }
    return out;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("intreval").
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

std::string join(std::span<const std::string_view> items) {
    std::string out;
    for (std::string_view s : items) {
        if (!out.empty()) out += ", ";
        out += s;
    }
    return out;
}

}  // namespace

void throw_error(std::string_view file, const YAML::Mark& mark, std::string_view path,
                 std::string_view message) {
    std::string text(file);
    if (!mark.is_null())
        text += ':' + std::to_string(mark.line + 1) + ':' + std::to_string(mark.column + 1);
    text += ": ";
    if (!path.empty()) {
        text += path;
        text += ": ";
    }
    text += message;
    throw LocatedConfigError(text, mark, std::string(path), std::string(message));
}

Value::Value(std::string_view file, YAML::Node node, std::string path, YAML::Mark fallback)
    : file_(file), node_(std::move(node)), path_(std::move(path)), fallback_(fallback) {}

YAML::Mark Value::mark() const {
    const YAML::Mark own = node_.Mark();
    if (own.is_null()) return fallback_;
    if (node_.IsNull() && !fallback_.is_null() && own.line != fallback_.line) return fallback_;
    return own;
}

std::string Value::describe() const {
    if (node_.IsSequence()) return "a list";
    if (node_.IsMap()) return "a mapping";
    if (node_.IsScalar()) return quoted(node_.Scalar());
    return "null";
}

std::string Value::child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + '.' + std::string(key);
}

void Value::fail(std::string_view message) const { throw_error(file_, mark(), path_, message); }

void Value::fail_child(std::string_view key, std::string_view message) const {
    throw_error(file_, mark(), child_path(key), message);
}

std::string read_string(const Value& v) {
    if (!v.is_scalar()) v.fail("expected a string, got " + v.describe());
    return v.node().Scalar();
}

std::string read_nonempty_string(const Value& v) {
    std::string s = read_string(v);
    if (s.empty()) v.fail("must not be empty");
    return s;
}

std::uint64_t read_uint(const Value& v, std::uint64_t min, std::uint64_t max) {
    if (!v.is_scalar()) v.fail("expected an integer, got " + v.describe());
    // A quoted "2000" is a string in YAML; accepting it would make the types a guess.
    if (!v.is_plain()) v.fail("expected an integer, not a quoted string");
    const std::string range =
        "must be between " + std::to_string(min) + " and " + std::to_string(max);
    std::string_view text = v.node().Scalar();
    const bool negative = text.starts_with('-');
    if (negative || text.starts_with('+')) text.remove_prefix(1);
    if (text.empty() || !std::all_of(text.begin(), text.end(),
                                      [](char c) { return c >= '0' && c <= '9'; }))
        v.fail("expected an integer");
    std::uint64_t n = 0;
    for (char c : text) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) v.fail(range);
        n = n * 10 + digit;
    }
    if ((negative && n != 0) || n < min || n > max) v.fail(range);
    return n;
}

double read_number(const Value& v, double min, double max) {
    if (!v.is_scalar()) v.fail("expected a number, got " + v.describe());
    if (!v.is_plain()) v.fail("expected a number, not a quoted string");
    const std::string& text = v.node().Scalar();
    double d = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
    // from_chars also takes "inf" and "nan"; neither is a rate.
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(d))
        v.fail("expected a number like 10 or 0.5");
    if (d < min || d > max) {
        std::ostringstream range;
        range << "must be between " << min << " and " << max;
        v.fail(range.str());
    }
    return d;
}

bool read_bool(const Value& v) {
    if (!v.is_scalar()) v.fail("expected true or false, got " + v.describe());
    if (!v.is_plain()) v.fail("expected true or false, not a quoted string");
    // YAML 1.2 core schema only: "yes"/"on" are strings there and yaml-cpp's 1.1 reading of
    // them surprises people (the Norway problem).
    const std::string& s = v.node().Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    v.fail("expected true or false");
}

std::string duration_text(Duration d) {
    struct Unit {
        std::int64_t ns;
        const char* suffix;
    };
    constexpr Unit units[] = {{3'600'000'000'000, "h"}, {60'000'000'000, "m"}, {1'000'000'000, "s"},
                              {1'000'000, "ms"}, {1'000, "us"}};
    for (const Unit& u : units)
        if (d.count() != 0 && d.count() % u.ns == 0) return std::to_string(d.count() / u.ns) + u.suffix;
    return std::to_string(d.count()) + "ns";
}

Duration read_duration(const Value& v, Duration max) {
    constexpr std::string_view expected = "expected a duration like \"50ms\"";
    if (!v.is_scalar()) v.fail(std::string(expected) + ", got " + v.describe());
    const std::optional<Duration> d = parse_duration(v.node().Scalar());
    if (!d) v.fail(expected);
    if (d->count() <= 0) v.fail("must be greater than 0");
    if (*d > max) v.fail("must not exceed " + duration_text(max));
    return *d;
}

std::size_t read_choice(const Value& v, std::span<const std::string_view> choices) {
    const std::string expected = "expected one of " + join(choices);
    if (!v.is_scalar()) v.fail(expected + ", got " + v.describe());
    const std::string& s = v.node().Scalar();
    const auto it = std::find(choices.begin(), choices.end(), s);
    if (it != choices.end()) return static_cast<std::size_t>(it - choices.begin());
    if (auto near = closest_match(s, choices))
        v.fail(expected + "; did you mean \"" + std::string(*near) + "\"?");
    v.fail(expected);
}

std::vector<Value> read_list(const Value& v) {
    if (!v.is_list()) v.fail("expected a list, got " + v.describe());
    std::vector<Value> out;
    out.reserve(v.node().size());
    for (std::size_t i = 0; i < v.node().size(); ++i)
        out.emplace_back(v.file(), v.node()[i], v.path() + '[' + std::to_string(i) + ']', v.mark());
    return out;
}

std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates) {
    const std::string w = normalized(word);
    if (w.empty()) return std::nullopt;
    // Short words get one edit, longer ones two: beyond that suggestions are mostly noise.
    const std::size_t limit = w.size() < 4 ? 1 : 2;
    std::optional<std::string_view> best;
    std::size_t best_distance = limit + 1;
    for (std::string_view c : candidates) {
        const std::string n = normalized(c);
        std::size_t d = edit_distance(w, n);
        // "warning" for "warn", "exchange" for "exchange_time": a clear prefix is a near miss.
        if (std::min(w.size(), n.size()) >= 3 && (w.starts_with(n) || n.starts_with(w)))
            d = std::min(d, limit);
        if (d < best_distance) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

std::vector<Entry> read_entries(const Value& map, std::span<const std::string_view> keys) {
    if (map.is_null()) return {};
    if (!map.is_map()) map.fail("expected a mapping, got " + map.describe());
    std::vector<Entry> out;
    std::vector<YAML::Mark> first(keys.size(), YAML::Mark::null_mark());
    for (auto it = map.node().begin(); it != map.node().end(); ++it) {
        const Value key(map.file(), it->first, map.path(), map.mark());
        if (!key.is_scalar()) key.fail("expected a key name, got " + key.describe());
        const std::string& name = it->first.Scalar();
        const Value named(map.file(), it->first, map.child_path(name), map.mark());
        const auto found = std::find(keys.begin(), keys.end(), name);
        if (found == keys.end()) {
            if (auto near = closest_match(name, keys))
                named.fail("unknown key, did you mean \"" + std::string(*near) + "\"?");
            named.fail("unknown key; valid keys: " + join(keys));
        }
        const auto index = static_cast<std::size_t>(found - keys.begin());
        // yaml-cpp keeps both entries of a duplicated key; silently taking one would hide
        // an edit that did not take effect.
        if (!first[index].is_null())
            named.fail("duplicate key (first at line " + std::to_string(first[index].line + 1) + ')');
        first[index] = named.mark();
        out.push_back({index, Value(map.file(), it->second, named.path(), named.mark())});
    }
    return out;
}

}  // namespace mdagg::config_detail
