#include "faults.hpp"

#include "book.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <stdexcept>

namespace mdagg::sim::detail {
namespace {

constexpr std::array<std::string_view, kFaultKinds> kKindNames = {
    "latency",   "hang",      "reset",     "close_after",     "status",  "too_many_requests",
    "ban",       "body_error", "malformed", "truncated",      "oversized", "endless_headers",
    "trickle",   "refuse",    "restart",   "rate_limit",      "rate_limited",
    "interim"};

constexpr std::size_t kMaxOversized = 256u << 20;

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

// Built by appending: g++ 12 at -O3 misreads `"'" + std::string(key)` as an overflowing
// memcpy (-Wstringop-overflow), which -Werror turns into a failed Release build.
std::string in_quotes(std::string_view key) {
    std::string out;
    out.reserve(key.size() + 2);
    out += '\'';
    out.append(key.data(), key.size());
    out += '\'';
    return out;
}

// Reads typed values out of the fault object and remembers which keys were used, so that a
// misspelt key is an error instead of a silently ignored parameter.
class Reader {
public:
    explicit Reader(const nlohmann::json& object) : object_(object) {}

    const nlohmann::json* find(std::string_view key) {
        used_.emplace_back(key);
        auto it = object_.find(std::string(key));
        return it == object_.end() ? nullptr : &*it;
    }

    std::optional<Micros> duration(std::string_view key) {
        const auto* value = find(key);
        if (!value) return std::nullopt;
        if (!value->is_string())
            fail(in_quotes(key) + ": expected a duration string like \"250ms\", \"2s\" or \"100us\"");
        try {
            return parse_duration(value->get<std::string>());
        } catch (const std::invalid_argument& e) {
            fail(in_quotes(key) + ": " + e.what());
        }
    }

    std::optional<std::uint64_t> integer(std::string_view key, std::uint64_t min,
                                         std::uint64_t max) {
        const auto* value = find(key);
        if (!value) return std::nullopt;
        const bool negative = value->is_number_integer() && !value->is_number_unsigned() &&
                              value->get<std::int64_t>() < 0;
        if (!value->is_number_integer() || negative || value->get<std::uint64_t>() < min ||
            value->get<std::uint64_t>() > max)
            fail(in_quotes(key) + ": expected an integer in [" + std::to_string(min) + ", " +
                 std::to_string(max) + "]");
        return value->get<std::uint64_t>();
    }

    std::optional<double> number(std::string_view key, double min, double max) {
        const auto* value = find(key);
        if (!value) return std::nullopt;
        if (!value->is_number() || !(value->get<double>() >= min && value->get<double>() <= max))
            fail(in_quotes(key) + ": expected a number in [" + trim(min) + ", " + trim(max) + "]");
        return value->get<double>();
    }

    std::optional<std::string> string(std::string_view key) {
        const auto* value = find(key);
        if (!value) return std::nullopt;
        if (!value->is_string()) fail(in_quotes(key) + ": expected a string");
        return value->get<std::string>();
    }

    std::optional<bool> boolean(std::string_view key) {
        const auto* value = find(key);
        if (!value) return std::nullopt;
        if (!value->is_boolean()) fail(in_quotes(key) + ": expected true or false");
        return value->get<bool>();
    }

    void reject_unused(std::string_view kind) const {
        for (const auto& [key, value] : object_.items()) {
            if (std::find(used_.begin(), used_.end(), key) == used_.end())
                fail("unknown key " + in_quotes(key) + " for kind " + in_quotes(kind));
        }
    }

private:
    static std::string trim(double v) {
        std::string s = std::to_string(v);
        while (s.size() > 1 && s.back() == '0') s.pop_back();
        if (!s.empty() && s.back() == '.') s.pop_back();
        return s;
    }

    const nlohmann::json& object_;
    std::vector<std::string> used_;
};

RetryAfterForm parse_form(Reader& r, RetryAfterForm fallback) {
    const auto text = r.string("retry_after_form");
    if (!text) return fallback;
    if (*text == "seconds") return RetryAfterForm::seconds;
    if (*text == "http_date") return RetryAfterForm::http_date;
    if (*text == "none") return RetryAfterForm::none;
    fail("'retry_after_form': expected \"seconds\", \"http_date\" or \"none\", got \"" + *text +
         "\"");
}

int parse_status(Reader& r, int fallback, int min, int max) {
    return static_cast<int>(r.integer("status", static_cast<std::uint64_t>(min),
                                      static_cast<std::uint64_t>(max))
                                .value_or(static_cast<std::uint64_t>(fallback)));
}

void parse_selector(Reader& r, FaultSpec& spec) {
    const auto* symbols = r.find("symbols");
    const auto symbol_ratio = r.number("symbol_ratio", 0.0, 1.0);
    const auto request_ratio = r.number("request_ratio", 0.0, 1.0);
    const int given = (symbols != nullptr) + symbol_ratio.has_value() + request_ratio.has_value();
    if (given > 1) fail("give at most one of 'symbols', 'symbol_ratio' and 'request_ratio'");
    if (given == 0) return;
    if (spec.listener_level() || spec.kind == FaultKind::rate_limit)
        fail("kind " + in_quotes(kind_name(spec.kind)) +
             " applies to the whole listener: it takes no 'symbols', 'symbol_ratio' or "
             "'request_ratio'");
    if (symbols) {
        if (!symbols->is_array() || symbols->empty())
            fail("'symbols': expected a non-empty array of symbol names");
        for (const auto& s : *symbols) {
            if (!s.is_string() || s.get<std::string>().empty())
                fail("'symbols': expected a non-empty array of symbol names");
            spec.symbols.push_back(s.get<std::string>());
        }
        std::sort(spec.symbols.begin(), spec.symbols.end());
        spec.select = Select::symbols;
    } else if (symbol_ratio) {
        spec.select = Select::symbol_ratio;
        spec.ratio = *symbol_ratio;
    } else {
        spec.select = Select::request_ratio;
        spec.ratio = *request_ratio;
    }
}

std::optional<FaultKind> kind_from_name(std::string_view name) {
    for (std::size_t i = 0; i < kKindNames.size(); ++i) {
        // rate_limited is an outcome of rate_limit, not something to ask for.
        if (kKindNames[i] == name && static_cast<FaultKind>(i) != FaultKind::rate_limited)
            return static_cast<FaultKind>(i);
    }
    return std::nullopt;
}

double uniform01(std::uint64_t& rng) noexcept {
    return static_cast<double>(next_random(rng) >> 11) * 0x1.0p-53;
}

bool selected(const FaultSpec& spec, std::string_view symbol, std::uint64_t& rng) {
    switch (spec.select) {
        case Select::all:
            return true;
        case Select::symbols:
            return std::binary_search(spec.symbols.begin(), spec.symbols.end(), symbol);
        case Select::symbol_ratio:
            return symbol_in_ratio(symbol, spec.ratio);
        case Select::request_ratio:
            return spec.ratio >= 1.0 || uniform01(rng) < spec.ratio;
    }
    return false;
}

Micros draw_latency(const FaultSpec& spec, std::uint64_t& rng) {
    if (spec.distribution == Distribution::uniform) {
        const auto span = static_cast<std::uint64_t>((spec.max - spec.min).count());
        return spec.min + Micros(span == 0 ? 0 : next_random(rng) % (span + 1));
    }
    // Pareto with scale `min`: P(X > x) = (min / x)^alpha, capped at `max`.
    const double u = 1.0 - uniform01(rng);  // (0, 1]
    const double x = static_cast<double>(spec.min.count()) / std::pow(u, 1.0 / spec.alpha);
    const double cap = static_cast<double>(spec.max.count());
    return Micros(static_cast<std::int64_t>(std::min(x, cap)));
}

std::int64_t ms_until(SteadyClock::time_point when, SteadyClock::time_point now) {
    return std::chrono::ceil<std::chrono::milliseconds>(std::max(when - now, SteadyClock::duration{}))
        .count();
}

}  // namespace

std::string_view kind_name(FaultKind kind) noexcept {
    const auto i = static_cast<std::size_t>(kind);
    return i < kKindNames.size() ? kKindNames[i] : std::string_view("none");
}

Micros parse_duration(std::string_view text) {
    const auto digits_end = text.find_first_not_of("0123456789");
    const std::string_view digits = text.substr(0, digits_end);
    const std::string_view unit =
        digits_end == std::string_view::npos ? std::string_view{} : text.substr(digits_end);
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    constexpr std::uint64_t kMax = 1'000'000'000;  // generous, and no overflow in any unit
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
        value > kMax)
        fail("expected a duration like \"250ms\", \"2s\" or \"100us\", got \"" +
             std::string(text) + "\"");
    const auto v = static_cast<std::int64_t>(value);
    if (unit == "us") return Micros(v);
    if (unit == "ms") return std::chrono::milliseconds(v);
    if (unit == "s") return std::chrono::seconds(v);
    if (unit == "m") return std::chrono::minutes(std::min<std::int64_t>(v, 10'000'000));
    if (unit == "h") return std::chrono::hours(std::min<std::int64_t>(v, 100'000));
    if (unit.empty() && v == 0) return Micros(0);
    fail("expected a duration like \"250ms\", \"2s\" or \"100us\" (units us, ms, s, m, h), got \"" +
         std::string(text) + "\"");
}

bool symbol_in_ratio(std::string_view symbol, double ratio) noexcept {
    const double u = static_cast<double>(stable_hash(symbol) >> 11) * 0x1.0p-53;
    return u < ratio;
}

FaultSpec parse_fault(std::string_view json_text) {
    nlohmann::json json = nlohmann::json::parse(json_text, nullptr, false);
    if (json.is_discarded()) fail("not valid JSON");
    return parse_fault(json);
}

FaultSpec parse_fault(const nlohmann::json& json) {
    if (!json.is_object()) fail("a fault is a JSON object with a \"kind\"");
    FaultSpec spec;
    spec.source = json;
    Reader r(json);
    const auto kind_text = r.string("kind");
    if (!kind_text) fail("missing 'kind'");
    const auto kind = kind_from_name(*kind_text);
    if (!kind) {
        std::string known;
        for (std::size_t i = 0; i < kKindNames.size(); ++i) {
            if (static_cast<FaultKind>(i) == FaultKind::rate_limited) continue;
            known += (known.empty() ? "" : ", ") + std::string(kKindNames[i]);
        }
        fail("unknown kind \"" + *kind_text + "\" (known: " + known + ")");
    }
    spec.kind = *kind;
    parse_selector(r, spec);
    if (spec.kind != FaultKind::restart) spec.duration = r.duration("duration");
    if (spec.duration && spec.duration->count() <= 0) fail("'duration': must be above 0");
    spec.after = r.duration("after").value_or(Micros(0));
    if (!spec.listener_level() && spec.kind != FaultKind::rate_limit)
        spec.count = r.integer("count", 1, UINT64_MAX).value_or(0);

    constexpr auto kHour = std::chrono::hours(1);
    switch (spec.kind) {
        case FaultKind::latency: {
            const auto distribution = r.string("distribution").value_or("uniform");
            if (distribution == "uniform")
                spec.distribution = Distribution::uniform;
            else if (distribution == "pareto")
                spec.distribution = Distribution::pareto;
            else
                fail("'distribution': expected \"uniform\" or \"pareto\", got \"" + distribution +
                     "\"");
            const auto min = r.duration("min");
            if (!min) fail("kind 'latency' needs 'min' (and 'max' for a range)");
            spec.min = *min;
            spec.max = r.duration("max").value_or(spec.distribution == Distribution::uniform
                                                      ? spec.min
                                                      : Micros(std::chrono::seconds(10)));
            if (spec.max < spec.min) fail("'max' is below 'min'");
            if (spec.max > kHour) fail("'max': at most 1h");
            if (spec.distribution == Distribution::pareto) {
                if (spec.min.count() <= 0) fail("'min': a pareto latency needs a scale above 0");
                spec.alpha = r.number("alpha", 0.1, 100.0).value_or(1.5);
            }
            break;
        }
        case FaultKind::hang:
        case FaultKind::close_after:
            if (spec.kind == FaultKind::close_after)
                spec.requests = r.integer("requests", 0, UINT64_MAX).value_or(0);
            break;
        case FaultKind::reset:
        case FaultKind::truncated:
            spec.after_bytes = r.integer("after_bytes", 0, 1u << 20);
            break;
        case FaultKind::status:
            spec.status = parse_status(r, 503, 400, 599);
            spec.retry_after = r.duration("retry_after");
            spec.retry_after_form = parse_form(r, RetryAfterForm::seconds);
            break;
        case FaultKind::too_many_requests:
            spec.status = 429;
            spec.retry_after = r.duration("retry_after").value_or(std::chrono::seconds(1));
            spec.retry_after_form = parse_form(r, RetryAfterForm::seconds);
            if (spec.retry_after_form == RetryAfterForm::none) spec.retry_after.reset();
            break;
        case FaultKind::ban:
            spec.status = parse_status(r, 418, 400, 599);
            spec.period = r.duration("period").value_or(std::chrono::seconds(10));
            if (spec.period.count() <= 0) fail("'period': must be above 0");
            spec.retry_after_form = parse_form(r, RetryAfterForm::seconds);
            break;
        case FaultKind::body_error: {
            spec.status = parse_status(r, 200, 200, 599);
            const auto* body = r.find("body");
            if (!body)
                spec.body = R"({"code":"50011","msg":"busy"})";
            else if (body->is_string())
                spec.body = body->get<std::string>();
            else if (body->is_object() || body->is_array())
                spec.body = body->dump();
            else
                fail("'body': expected a JSON object or a string");
            break;
        }
        case FaultKind::malformed:
            spec.body = r.string("body").value_or("");
            break;
        case FaultKind::oversized:
            spec.size = r.integer("size", 256, kMaxOversized).value_or(1u << 20);
            break;
        case FaultKind::endless_headers:
        case FaultKind::trickle:
            spec.interval = r.duration("interval").value_or(std::chrono::milliseconds(100));
            if (spec.interval > kHour) fail("'interval': at most 1h");
            if (spec.kind == FaultKind::trickle)
                spec.chunk = r.integer("chunk", 1, 1u << 20).value_or(1);
            break;
        case FaultKind::refuse:
            spec.drop_connections = r.boolean("drop_connections").value_or(false);
            break;
        case FaultKind::restart:
            spec.period = r.duration("period").value_or(std::chrono::seconds(1));
            if (spec.period > kHour) fail("'period': at most 1h");
            // The fault lives while the listener is down.
            spec.duration = std::max(spec.period, Micros(1));
            spec.drop_connections = true;
            break;
        case FaultKind::rate_limit:
            spec.limit = r.integer("limit", 0, UINT64_MAX).value_or(0);
            spec.window = r.duration("window").value_or(std::chrono::seconds(1));
            if (spec.window.count() <= 0) fail("'window': must be above 0");
            spec.weight = r.integer("weight", 1, 1'000'000).value_or(1);
            spec.ban_after = r.integer("ban_after", 0, UINT64_MAX).value_or(0);
            spec.ban_period = r.duration("ban_period").value_or(std::chrono::seconds(10));
            if (spec.ban_after != 0 && spec.ban_period.count() <= 0)
                fail("'ban_period': must be above 0");
            spec.ban_status = static_cast<int>(r.integer("ban_status", 400, 599).value_or(418));
            spec.retry_after_form = parse_form(r, RetryAfterForm::seconds);
            spec.usage_header = r.string("usage_header").value_or("");
            if (spec.usage_header.find_first_of(":\r\n \t") != std::string::npos)
                fail("'usage_header': not a valid header name");
            if (spec.limit == 0 && spec.usage_header.empty())
                fail("kind 'rate_limit' needs a 'limit', a 'usage_header' or both");
            break;
        case FaultKind::interim:
            // RFC 9110 15.2: the interim answers a client must skip (101 would switch protocols).
            spec.status = parse_status(r, 100, 100, 103);
            if (spec.status != 100 && spec.status != 103) fail("'status': expected 100 or 103");
            break;
        case FaultKind::rate_limited:
        case FaultKind::none:
            break;
    }
    r.reject_unused(*kind_text);
    return spec;
}

std::uint64_t FaultTable::add(FaultSpec spec, SteadyClock::time_point now) {
    std::lock_guard lock(mutex_);
    Entry e;
    e.id = next_id_++;
    e.starts = now + spec.after;
    if (spec.duration) e.expires = e.starts + *spec.duration;
    e.window_start = e.starts;
    e.spec = std::make_shared<const FaultSpec>(std::move(spec));
    entries_.push_back(std::move(e));
    update_count_locked();
    return entries_.back().id;
}

std::shared_ptr<const FaultSpec> FaultTable::remove(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [id](const Entry& e) { return e.id == id; });
    if (it == entries_.end()) return nullptr;
    auto spec = std::move(it->spec);
    entries_.erase(it);
    update_count_locked();
    return spec;
}

std::vector<std::pair<std::uint64_t, std::shared_ptr<const FaultSpec>>> FaultTable::clear() {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::uint64_t, std::shared_ptr<const FaultSpec>>> out;
    for (auto& e : entries_) out.emplace_back(e.id, std::move(e.spec));
    entries_.clear();
    update_count_locked();
    return out;
}

bool FaultTable::listed(const Entry& e, SteadyClock::time_point now) noexcept {
    if (e.expires && now >= *e.expires) return false;  // its timer removes it in a moment
    return e.spec->count == 0 || e.hits < e.spec->count || now < e.banned_until;
}

std::size_t FaultTable::size(SteadyClock::time_point now) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(),
                      [now](const Entry& e) { return listed(e, now); }));
}

void FaultTable::update_count_locked() noexcept {
    std::size_t n = 0;
    for (const auto& e : entries_) n += !e.spec->listener_level();
    request_level_.store(n, std::memory_order_relaxed);
}

Decision FaultTable::decide(std::string_view symbol, std::size_t responses_on_connection,
                            std::uint64_t& rng, SteadyClock::time_point now) {
    Decision d;
    std::lock_guard lock(mutex_);
    auto live = [now](const Entry& e) {
        return now >= e.starts && (!e.expires || now < *e.expires);
    };

    // 1. A ban in force answers everything, whichever fault or limiter imposed it.
    for (const auto& e : entries_) {
        if (!live(e) || now >= e.banned_until) continue;
        d.kind = FaultKind::ban;
        d.spec = e.spec;
        d.status = e.spec->kind == FaultKind::ban ? e.spec->status : e.spec->ban_status;
        d.retry_after = std::chrono::ceil<Micros>(e.banned_until - now);
        d.retry_after_form = e.spec->retry_after_form;
        return d;
    }

    // 2. Rate limiters count every quote request, whatever answers it.
    for (auto& e : entries_) {
        const FaultSpec& s = *e.spec;
        if (s.kind != FaultKind::rate_limit || !live(e)) continue;
        if (now - e.window_start >= s.window) {
            // A whole window without a 429 forgives earlier violations.
            const auto windows = (now - e.window_start) / s.window;
            if (e.rejected_in_window == 0 || windows > 1) e.violations = 0;
            e.window_start += windows * s.window;
            e.used = 0;
            e.rejected_in_window = 0;
        }
        e.used += s.weight;
        if (!s.usage_header.empty()) {
            d.usage = e.spec;
            d.used = e.used;
        }
        if (s.limit != 0 && e.used > s.limit && d.kind == FaultKind::none) {
            ++e.hits;
            ++e.rejected_in_window;
            d.spec = e.spec;
            d.retry_after_form = s.retry_after_form;
            if (s.ban_after != 0 && ++e.violations >= s.ban_after) {
                e.violations = 0;
                e.banned_until = now + s.ban_period;
                d.kind = FaultKind::ban;
                d.status = s.ban_status;
                d.retry_after = s.ban_period;
            } else {
                d.kind = FaultKind::rate_limited;
                d.status = 429;
                d.retry_after = std::chrono::ceil<Micros>(e.window_start + s.window - now);
            }
        }
    }
    if (d.kind != FaultKind::none) return d;

    // 3. Latency faults add up; then the oldest matching response fault answers.
    bool exhausted = false;
    for (auto& e : entries_) {
        const FaultSpec& s = *e.spec;
        if (s.listener_level() || s.kind == FaultKind::rate_limit || !live(e)) continue;
        if (s.count != 0 && e.hits >= s.count) {
            exhausted |= now >= e.banned_until;  // a used-up ban lingers for its period
            continue;
        }
        if (!selected(s, symbol, rng)) continue;
        if (s.kind == FaultKind::close_after && responses_on_connection < s.requests) continue;
        ++e.hits;
        exhausted |= s.count != 0 && e.hits >= s.count;
        if (s.kind == FaultKind::latency) {
            d.delay += draw_latency(s, rng);
            continue;
        }
        d.kind = s.kind;
        d.spec = e.spec;
        d.status = s.status;
        d.retry_after = s.retry_after;
        d.retry_after_form = s.retry_after_form;
        if (s.kind == FaultKind::ban) {
            e.banned_until = now + s.period;
            d.retry_after = s.period;
        }
        break;
    }
    if (exhausted) {
        // A ban that used its last trigger still runs its period before it goes.
        std::erase_if(entries_, [now](const Entry& e) {
            return e.spec->count != 0 && e.hits >= e.spec->count && now >= e.banned_until;
        });
        update_count_locked();
    }
    return d;
}

nlohmann::json FaultTable::list(SteadyClock::time_point now) const {
    std::lock_guard lock(mutex_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : entries_) {
        if (!listed(e, now)) continue;
        nlohmann::json item{{"id", e.id},
                            {"kind", kind_name(e.spec->kind)},
                            {"hits", e.hits},
                            {"expires_in_ms", nullptr},
                            {"spec", e.spec->source}};
        if (e.expires) item["expires_in_ms"] = ms_until(*e.expires, now);
        if (now < e.starts) item["starts_in_ms"] = ms_until(e.starts, now);
        if (now < e.banned_until) item["banned_for_ms"] = ms_until(e.banned_until, now);
        if (e.spec->kind == FaultKind::rate_limit)
            item["used"] = now < e.starts || now - e.window_start >= e.spec->window ? 0 : e.used;
        out.push_back(std::move(item));
    }
    return nlohmann::json{{"faults", std::move(out)}};
}

std::string retry_after_value(Micros after, RetryAfterForm form) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(std::max(after, Micros(0)));
    if (form != RetryAfterForm::http_date) return std::to_string(seconds.count());
    // Whole seconds from now, rounded up so a client never retries early.
    const auto when = std::chrono::ceil<std::chrono::seconds>(std::chrono::system_clock::now() +
                                                               after);
    const std::time_t t = std::chrono::system_clock::to_time_t(
        std::chrono::system_clock::time_point(when));
    std::tm tm{};
    gmtime_r(&t, &tm);
    // IMF-fixdate is locale-independent: spell the names out rather than trust strftime's %a.
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                  tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return buf;
}

}  // namespace mdagg::sim::detail
