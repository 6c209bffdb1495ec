// `mirrors:`, `hedge:` and `priority:` of a source (issue 15): the readers and the checks
// that need the whole source.
#include "detail.hpp"

#include <algorithm>
#include <charconv>

namespace mdagg {

std::uint8_t SourceConfig::priority_of(std::string_view symbol) const {
    if (auto it = priority.symbols.find(std::string(symbol)); it != priority.symbols.end())
        return it->second;
    std::uint8_t best = PriorityConfig::unset;
    for (const auto& [tag, level] : priority.tags)
        if ((best == PriorityConfig::unset || level < best) &&
            (std::find(tags.begin(), tags.end(), tag) != tags.end() || has_tag(symbol, tag)))
            best = level;
    return best == PriorityConfig::unset ? priority.source : best;
}

}  // namespace mdagg

namespace mdagg::config_detail {

namespace {

constexpr std::size_t max_mirrors = 8;
constexpr Duration max_hedge_after = std::chrono::hours(1);

// "5%", "0.5%", "100%": a share of first requests, as a fraction.
double read_percent(const Value& v) {
    constexpr std::string_view expected = "expected a share like 5% (above 0%, at most 100%)";
    if (!v.is_scalar()) v.fail(std::string(expected) + ", got " + v.describe());
    const std::string& text = v.node().Scalar();
    double value = -1;
    if (text.size() < 2 || text.back() != '%') v.fail(std::string(expected) + ", got " + v.describe());
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, value);
    if (ec != std::errc{} || end != text.data() + text.size() - 1 || !(value > 0 && value <= 100))
        v.fail(std::string(expected) + ", got " + v.describe());
    return value / 100;
}

constexpr std::string_view percentiles[] = {"p90", "p95", "p99"};
constexpr std::uint8_t percentile_values[] = {90, 95, 99};

void read_after(const Value& v, HedgeConfig& out) {
    if (v.is_scalar() && !v.node().Scalar().empty() && v.node().Scalar().front() == 'p') {
        out.percentile = percentile_values[read_choice(v, percentiles)];
        return;
    }
    if (!v.is_scalar() || v.node().Scalar().empty() || v.node().Scalar().front() < '0' ||
        v.node().Scalar().front() > '9')
        v.fail("expected a duration like \"20ms\" or one of \"p90\", \"p95\", \"p99\", got " +
               v.describe());
    out.after = read_duration(v, max_hedge_after);
}

struct HedgeDraft {
    HedgeConfig& out;
    HedgeMarks& marks;
};

constexpr Key<HedgeDraft> hedge_keys[] = {
    {"after",
     [](const Value& v, HedgeDraft& d) {
         read_after(v, d.out);
         d.marks.after = v;
     },
     true},
    {"max_extra", [](const Value& v, HedgeDraft& d) { d.out.max_extra = read_percent(v); }},
};

struct PriorityDraft {
    PriorityConfig& out;
    HedgeMarks& marks;
};

void read_tag_priorities(const Value& v, PriorityDraft& d) {
    if (!v.is_map()) v.fail("expected a mapping of tag to priority, like { majors: 1 }, got " + v.describe());
    for (auto it = v.node().begin(); it != v.node().end(); ++it) {
        const Value key(v.file(), it->first, v.path(), v.mark());
        const Value level(v.file(), it->second, v.child_path(it->first.Scalar()), key.mark());
        const std::string tag = read_nonempty_string(key);
        for (const auto& [seen, unused] : d.out.tags)
            if (seen == tag) key.fail("duplicate tag \"" + tag + "\"");
        d.out.tags.emplace_back(tag, read_priority_value(level));
        d.marks.priority_tags.push_back(key);
    }
}

constexpr Key<PriorityDraft> priority_keys[] = {
    {"default", [](const Value& v, PriorityDraft& d) { d.out.source = read_priority_value(v); }},
    {"tags", read_tag_priorities},
};

}  // namespace

std::uint8_t read_priority_value(const Value& v) {
    if (!v.is_plain()) v.fail("expected a priority from 1 (highest) to 9, got " + v.describe());
    return static_cast<std::uint8_t>(read_uint(v, 1, 9));
}

void read_priority(const Value& v, PriorityConfig& out, HedgeMarks& marks) {
    marks.priority = v;
    if (v.is_map()) {
        PriorityDraft d{out, marks};
        read_map(v, priority_keys, d);
        return;
    }
    out.source = read_priority_value(v);
}

void read_mirrors(const Value& v, SourceConfig& source, HedgeMarks& marks) {
    marks.mirrors = v;
    const std::vector<Value> items = read_list(v);
    if (items.empty()) v.fail("must list at least one mirror URL (or leave mirrors out)");
    if (items.size() > max_mirrors) v.fail("at most " + std::to_string(max_mirrors) + " mirrors");
    for (const Value& item : items) {
        MirrorConfig mirror;
        mirror.url_text = read_nonempty_string(item);
        if (auto err = parse_url(mirror.url_text, mirror.url)) item.fail(*err);
        resolve_url_secrets(item, mirror.url);
        for (std::size_t i = 0; i < source.mirrors.size(); ++i)
            if (source.mirrors[i].url_text == mirror.url_text)
                item.fail("duplicate mirror, already at " + v.path() + '[' + std::to_string(i) + ']');
        source.mirrors.push_back(std::move(mirror));
        marks.mirror_items.push_back(item);
    }
}

void read_hedge(const Value& v, HedgeConfig& out, HedgeMarks& marks) {
    marks.hedge = v;
    HedgeDraft d{out, marks};
    read_map(v, hedge_keys, d);
    out.enabled = true;
}

void check_hedge(const HedgeMarks& marks, const SourceConfig& source) {
    for (std::size_t i = 0; i < source.mirrors.size(); ++i) {
        const MirrorConfig& m = source.mirrors[i];
        const Value& item = marks.mirror_items[i];
        if (m.url_text == source.url_text) item.fail("is the source's own url");
        // The same API elsewhere: a poller swaps hosts and nothing else.
        if (m.url.scheme != source.url.scheme)
            item.fail("must use the url's scheme (" + source.url.scheme + "://): a mirror "
                      "shares the source's tls settings");
        const bool url_has = source.url.target_template.find("{symbol}") != std::string::npos;
        const bool mirror_has = m.url.target_template.find("{symbol}") != std::string::npos;
        if (url_has != mirror_has)
            item.fail(url_has ? "must contain \"{symbol}\" like the url"
                              : "must not contain \"{symbol}\": the url has none");
        // A batch poller fails over with its request: the mirror spells its names as the url does.
        const bool url_lists = source.url.target_template.find("{symbols}") != std::string::npos;
        const bool mirror_lists = m.url.target_template.find("{symbols}") != std::string::npos;
        if (url_lists != mirror_lists)
            item.fail(url_lists ? "must contain \"{symbols}\" like the url"
                                : "must not contain \"{symbols}\": the url has none");
    }
    if (source.hedge.enabled) {
        if (source.mirrors.empty())
            marks.hedge->fail("needs mirrors: a hedge goes to the next healthy mirror");
        if (source.hedge.percentile == 0 && source.hedge.after >= source.timeout)
            marks.after->fail("must be shorter than the timeout (" +
                              duration_text(source.timeout) + "), or no hedge could fire");
    }
    for (std::size_t i = 0; i < source.priority.tags.size(); ++i) {
        const std::string& tag = source.priority.tags[i].first;
        bool used = std::find(source.tags.begin(), source.tags.end(), tag) != source.tags.end();
        for (const auto& [symbol, tags] : source.symbol_tags)
            used = used || std::find(tags.begin(), tags.end(), tag) != tags.end();
        if (!used) marks.priority_tags[i].fail("no symbol of this source has tag \"" + tag + "\"");
    }
}

std::vector<std::string> hedge_key_names() {
    return {"mirrors", "hedge.after", "hedge.max_extra", "priority", "priority.default",
            "priority.tags"};
}

}  // namespace mdagg::config_detail
