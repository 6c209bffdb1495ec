// The documentation's promises that code can check: README.md gives the two commands, every
// config example in README.md, docs/configuration.md and docs/venues.md passes the real
// `mdagg --check-config`, every relative link between the pages reaches a file and a heading,
// no paragraph is written twice (each fact has one page), `mdagg-sim --help` names the page
// that lists its faults, and every metric family a real /metrics scrape shows is named in
// docs/operations.md.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using harness::Process;
using harness::TempDir;
namespace fs = std::filesystem;

namespace {

// Tests run from the build tree (build*/tests/...), so the source tree is an ancestor.
fs::path source_dir() {
    if (const char* dir = std::getenv("MDAGG_SOURCE_DIR")) return dir;
    for (auto dir = fs::current_path();; dir = dir.parent_path()) {
        if (fs::exists(dir / "README.md") && fs::is_directory(dir / "docs")) return dir;
        if (dir == dir.parent_path()) return {};
    }
}

std::string read(const fs::path& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// README.md and every docs/*.md, relative to the source tree.
std::vector<fs::path> pages(const fs::path& root) {
    std::vector<fs::path> out{"README.md"};
    for (const auto& e : fs::directory_iterator(root / "docs"))
        if (e.path().extension() == ".md") out.push_back(fs::relative(e.path(), root));
    return out;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

struct Fenced {
    std::string lang;
    std::string body;
};

std::vector<Fenced> fenced_blocks(const std::string& text) {
    std::vector<Fenced> out;
    bool inside = false;
    for (const auto& line : lines_of(text)) {
        if (line.rfind("```", 0) == 0) {
            if (!inside) out.push_back({line.substr(3), {}});
            inside = !inside;
        } else if (inside) {
            out.back().body += line + "\n";
        }
    }
    return out;
}

// The page's prose: fenced blocks dropped, inline code spans blanked (they may hold brackets).
std::vector<std::string> prose_lines(const std::string& text) {
    std::vector<std::string> out;
    bool inside = false;
    for (auto line : lines_of(text)) {
        if (line.rfind("```", 0) == 0) {
            inside = !inside;
            continue;
        }
        if (inside) continue;
        line = std::regex_replace(line, std::regex("`[^`]*`"), "``");
        out.push_back(line);
    }
    return out;
}

// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, "-1" etc. for
// a repeated heading.
std::set<std::string> anchors(const std::string& text) {
    std::set<std::string> out;
    std::map<std::string, int> seen;
    bool inside = false;
    for (const auto& line : lines_of(text)) {
        if (line.rfind("```", 0) == 0) inside = !inside;
        if (inside || line.empty() || line[0] != '#') continue;
        std::string title = line.substr(line.find_first_not_of('#'));
        std::string slug;
        for (unsigned char c : title) {
            if (std::isalnum(c) || c == '-' || c == '_')
                slug += static_cast<char>(std::tolower(c));
            else if (c == ' ')
                slug += '-';
        }
        if (!slug.empty() && slug[0] == '-') slug.erase(0, 1);
        int n = seen[slug]++;
        out.insert(n == 0 ? slug : slug + "-" + std::to_string(n));
    }
    return out;
}

int check_config(const TempDir& dir, const std::string& name, const std::string& yaml, std::string& err) {
    const fs::path path = dir / (name + ".yaml");
    std::ofstream(path) << yaml;
    Process check(name, {MDAGG_BIN, "--check-config", path.string()}, dir.path());
    auto code = check.wait(20s);
    err = check.stderr_text();
    return code ? *code : -1;
}

bool is_full_config(const std::string& yaml) {
    return std::regex_search(yaml, std::regex("(^|\n)sources:"));
}

}  // namespace

TEST(Docs, ReadmeGivesTheTwoCommands) {
    const fs::path root = source_dir();
    ASSERT_FALSE(root.empty()) << "README.md not found above " << fs::current_path();
    const std::string readme = read(root / "README.md");
    const std::string commands =
        "bash scripts/demo.sh   # install, build, start the simulator and mdagg: 2,000 symbols every 50 ms into ./out; Ctrl+C drains\n"
        "bash scripts/test.sh   # install, build, run every test (unit + integration with the real processes)\n";
    bool found = false;
    for (const auto& block : fenced_blocks(readme)) found = found || (block.lang == "sh" && block.body == commands);
    EXPECT_TRUE(found) << "README.md lost its two commands";
    EXPECT_NE(readme.find("## The two commands (fresh Debian 12)"), std::string::npos);
    EXPECT_TRUE(fs::exists(root / "scripts/demo.sh"));
    EXPECT_TRUE(fs::exists(root / "scripts/test.sh"));
}

TEST(Docs, EveryConfigExampleIsValid) {
    const fs::path root = source_dir();
    ASSERT_FALSE(root.empty());
    TempDir dir;
    // The README's config is the base for the fragments (a `hosts:` list alone has no sources).
    std::string minimal;
    for (const auto& block : fenced_blocks(read(root / "README.md")))
        if (block.lang == "yaml" && is_full_config(block.body)) minimal = block.body;
    ASSERT_FALSE(minimal.empty()) << "README.md has no config example";

    // The secrets the examples read: a missing one is a config error.
    ::setenv("VENUE_API_KEY", "docs-test-key", 1);
    ::setenv("BINANCE_API_KEY", "docs-test-key", 1);
    int checked = 0;
    for (const fs::path page : {"README.md", "docs/configuration.md", "docs/venues.md"}) {
        for (const auto& block : fenced_blocks(read(root / page))) {
            if (block.lang != "yaml") continue;
            std::string yaml = block.body;
            if (!is_full_config(yaml)) {
                // A hosts entry must name a host some source polls: point the base at it.
                std::smatch host;
                std::string base = minimal;
                if (std::regex_search(yaml, host, std::regex(R"(host: ([^\s#]+))")))
                    base = std::regex_replace(base, std::regex(R"(http://[^/]+/)"), "http://" + host[1].str() + "/");
                yaml = base + yaml;
            }
            std::string err;
            EXPECT_EQ(check_config(dir, "example" + std::to_string(checked), yaml, err), 0)
                << page << ": this example fails mdagg --check-config:\n" << block.body << err;
            ++checked;
        }
    }
    EXPECT_GE(checked, 3) << "the README's config, the reference config and the hosts example";
}

TEST(Docs, EveryRelativeLinkReachesAPageAndHeading) {
    const fs::path root = source_dir();
    ASSERT_FALSE(root.empty());
    const std::regex link(R"(\[[^\]]*\]\(([^)\s]+)\))");
    int links = 0;
    for (const auto& page : pages(root)) {
        for (const auto& line : prose_lines(read(root / page))) {
            for (std::sregex_iterator it(line.begin(), line.end(), link), end; it != end; ++it) {
                const std::string target = (*it)[1];
                if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) continue;
                ++links;
                const auto hash = target.find('#');
                const std::string file = target.substr(0, hash);
                const fs::path resolved = file.empty() ? root / page : (root / page).parent_path() / file;
                ASSERT_TRUE(fs::exists(resolved)) << page << ": link to a missing file: " << target;
                if (hash == std::string::npos) continue;
                const std::string anchor = target.substr(hash + 1);
                EXPECT_EQ(anchors(read(resolved)).count(anchor), 1u)
                    << page << ": link to a missing heading: " << target;
            }
        }
    }
    EXPECT_GE(links, 20);
}

// Each fact has one page: a paragraph (or list item) of prose appears once across the pages.
TEST(Docs, NoParagraphIsWrittenTwice) {
    const fs::path root = source_dir();
    ASSERT_FALSE(root.empty());
    std::map<std::string, fs::path> first_seen;
    for (const auto& page : pages(root)) {
        std::vector<std::string> paragraphs{""};
        for (const auto& line : prose_lines(read(root / page))) {
            const bool starts_item = line.rfind("- ", 0) == 0 || line.rfind("| ", 0) == 0;
            if (line.empty() || starts_item) paragraphs.emplace_back();
            std::istringstream words(line);
            for (std::string w; words >> w;) paragraphs.back() += w + " ";
        }
        for (const auto& p : paragraphs) {
            if (p.size() < 100) continue;
            auto [it, inserted] = first_seen.emplace(p, page);
            EXPECT_TRUE(inserted) << "written in " << it->second << " and again in " << page << ":\n" << p;
        }
    }
}

TEST(Docs, SimulatorHelpNamesThePageOfItsFaults) {
    const fs::path root = source_dir();
    ASSERT_FALSE(root.empty());
    TempDir dir;
    Process help("sim-help", {MDAGG_SIM_BIN, "--help"}, dir.path());
    ASSERT_EQ(help.wait(10s), 0);
    const std::string text = help.stdout_text() + help.stderr_text();
    const std::smatch m = [&] {
        std::smatch r;
        std::regex_search(text, r, std::regex(R"((docs/[a-z_]+\.md) lists the kinds)"));
        return r;
    }();
    ASSERT_FALSE(m.empty()) << text;
    const std::string page = read(root / m[1].str());
    for (const char* kind : {"latency", "hang", "reset", "restart", "rate_limit", "interim"})
        EXPECT_NE(page.find(std::string("| `") + kind + "` |"), std::string::npos) << m[1] << " lacks " << kind;
}

namespace {

// The metric names docs/operations.md mentions, with `a_{b,c}_d` spelled out.
std::set<std::string> documented_metrics(const std::string& text) {
    std::set<std::string> out;
    // A brace group followed by more of the name is a choice; one at the end holds labels.
    const std::regex token(R"(mdagg_[a-z0-9_]*(\{[a-z0-9_,]+\}[a-z0-9_]+)?)");
    for (std::sregex_iterator it(text.begin(), text.end(), token), end; it != end; ++it) {
        const std::string t = it->str();
        const auto open = t.find('{');
        if (open == std::string::npos) {
            out.insert(t);
            continue;
        }
        const auto close = t.find('}');
        std::istringstream alternatives(t.substr(open + 1, close - open - 1));
        for (std::string a; std::getline(alternatives, a, ',');)
            out.insert(t.substr(0, open) + a + t.substr(close + 1));
    }
    return out;
}

}  // namespace

TEST(Docs, EveryExportedMetricFamilyIsDocumented) {
    const fs::path root = source_dir();
    ASSERT_FALSE(root.empty());
    TempDir dir;
    auto sim = harness::start_sim(dir.path(), {"--symbols", "5"});
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = 5;
    // Per-symbol series exist only for the symbols admin.symbol_metrics names.
    c.extra = "admin: { listen: \"127.0.0.1:0\", symbol_metrics: [\"STOCK_1\"] }\n";
    Process daemon("mdagg", {MDAGG_BIN, "--config", harness::write_config(dir.path(), c).string()}, dir.path());
    auto listening = daemon.wait_for_line("msg", "admin listening", 15s);
    ASSERT_TRUE(listening) << daemon.stdout_text();
    std::this_thread::sleep_for(500ms);  // some polls, so every family has its samples
    const std::string scrape = harness::http_get((*listening)["port"].get<int>(), "/metrics");
    daemon.signal(SIGTERM);
    EXPECT_EQ(daemon.wait(10s), 0);

    const auto documented = documented_metrics(read(root / "docs/operations.md"));
    std::istringstream in(scrape);
    int families = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("# TYPE ", 0) != 0) continue;
        const std::string name = line.substr(7, line.find(' ', 7) - 7);
        ++families;
        EXPECT_EQ(documented.count(name), 1u) << name << " is exported but not in docs/operations.md";
    }
    EXPECT_GE(families, 30) << scrape;
}
