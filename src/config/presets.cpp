// Presets: config/presets/NAME.yaml, compiled in, fill a source's keys and its host's limits.
// They are applied to the YAML document before the schema reads it, so a preset's keys are
// checked exactly like keys written in the file, and --print can show the result as YAML.
#include "presets.hpp"

#include <algorithm>

namespace mdagg {

namespace config_detail {

namespace {

const EmbeddedPreset* find_preset(std::string_view name) {
    for (const EmbeddedPreset& p : embedded_presets())
        if (p.name == name) return &p;
    return nullptr;
}

std::string known_presets() {
    std::string out;
    for (const std::string& name : preset_names()) out += (out.empty() ? "" : ", ") + name;
    return out;
}

std::string position(std::string_view file, const YAML::Mark& mark) {
    std::string out(file);
    if (!mark.is_null()) out.append(":").append(std::to_string(mark.line + 1)).append(":").append(std::to_string(mark.column + 1));
    return out;
}

// A preset's document: `source:` (keys of a source) and `host:` (keys of a hosts entry). The
// presets' own test loads each one, so a malformed preset never reaches a user; the check here
// names the preset's file should one slip through anyway.
struct PresetDocument {
    YAML::Node source, host;
};

PresetDocument load_preset(const EmbeddedPreset& preset) {
    const std::string file(preset.file);
    YAML::Node root;
    try {
        root = YAML::Load(std::string(preset.text));
    } catch (const YAML::Exception& e) {
        throw_error(file, e.mark, "", "invalid YAML in a compiled-in preset: " + e.msg);
    }
    constexpr std::string_view keys[] = {"source", "host"};
    PresetDocument doc;
    for (const Entry& e : read_entries(Value(file, root, ""), keys)) {
        if (!e.value.is_map()) e.value.fail("expected a mapping, got " + e.value.describe());
        (e.key == 0 ? doc.source : doc.host) = e.value.node();
    }
    if (!doc.source) Value(file, root, "").fail_child("source", "required key is missing");
    return doc;
}

bool has_key(const YAML::Node& map, const std::string& key) {
    for (auto it = map.begin(); it != map.end(); ++it)
        if (it->first.IsScalar() && it->first.Scalar() == key) return true;
    return false;
}

// The scalar at `key` of a mapping, or nullopt.
std::optional<std::string> scalar_at(const YAML::Node& map, const std::string& key) {
    for (auto it = map.begin(); it != map.end(); ++it)
        if (it->first.IsScalar() && it->first.Scalar() == key)
            return it->second.IsScalar() ? std::optional<std::string>(it->second.Scalar()) : std::nullopt;
    return std::nullopt;
}

struct HostName {
    std::string host;
    std::uint16_t port = 0;  // 0: every port
};

// A hosts entry's `host:` as resolve_hosts reads it (read_host_name in config.cpp).
std::optional<HostName> entry_host(const YAML::Node& entry) {
    if (!entry.IsMap()) return std::nullopt;
    const auto text = scalar_at(entry, "host");
    Url url;
    if (!text || parse_url("http://" + *text + "/", url)) return std::nullopt;
    const std::size_t bracket = text->rfind(']');
    const bool has_port = text->find(':', bracket == std::string::npos ? 0 : bracket) != std::string::npos;
    return HostName{url.host, has_port ? url.port : std::uint16_t{0}};
}

// The hosts entry a source with this url uses: host:port exactly, else the host's port-less one.
std::optional<std::size_t> host_entry_of(const YAML::Node& hosts, const Url& url) {
    std::optional<std::size_t> any_port;
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        const auto name = entry_host(hosts[i]);
        if (!name || name->host != url.host) continue;
        if (name->port == url.port) return i;
        if (name->port == 0) any_port = i;
    }
    return any_port;
}

void fill_host(YAML::Node& document, const YAML::Node& preset_host,
               const Url& url, PresetOrigins::Filled origin, PresetOrigins& origins) {
    if (!has_key(document, "hosts")) document["hosts"] = YAML::Node(YAML::NodeType::Sequence);
    YAML::Node hosts = document["hosts"];
    if (!hosts.IsSequence()) return;  // the schema reports it
    origin.filled_from = preset_host.Mark();
    if (const auto at = host_entry_of(hosts, url)) {
        YAML::Node entry = hosts[*at];
        const std::string path = "hosts[" + std::to_string(*at) + "]";
        for (auto it = preset_host.begin(); it != preset_host.end(); ++it) {
            const std::string key = it->first.Scalar();
            if (has_key(entry, key)) continue;  // the user's entry wins
            entry[key] = it->second;
            origin.path = path + "." + key;
            origins.add(origin);
        }
        return;
    }
    // Port-less: venues limit per address, and every port of the host then shares the bucket.
    YAML::Node entry(YAML::NodeType::Map);
    entry["host"] = url.host.find(':') == std::string::npos ? url.host : "[" + url.host + "]";
    for (auto it = preset_host.begin(); it != preset_host.end(); ++it) entry[it->first.Scalar()] = it->second;
    origin.path = "hosts[" + std::to_string(hosts.size()) + "]";
    origin.whole_entry = true;
    hosts.push_back(entry);
    origins.add(origin);
}

}  // namespace

void PresetOrigins::rethrow_if_filled(const LocatedConfigError& e) const {
    for (const Filled& f : filled_) {
        const bool inside = e.path == f.path ||
                            (e.path.starts_with(f.path) &&
                             (e.path[f.path.size()] == '.' || e.path[f.path.size()] == '['));
        if (!inside) continue;
        const YAML::Mark in_preset = f.whole_entry ? f.filled_from : e.mark;
        throw_error(file, f.preset_key, e.path,
                    e.message + " (set by preset " + std::string(f.preset->name) + ", " +
                        position(f.preset->file, in_preset) + ")");
    }
}

PresetOrigins apply_presets(std::string_view file, YAML::Node& document) {
    PresetOrigins origins;
    origins.file = file;
    if (!document.IsMap() || !has_key(document, "sources")) return origins;
    YAML::Node sources = document["sources"];
    if (!sources.IsSequence()) return origins;
    for (std::size_t i = 0; i < sources.size(); ++i) {
        YAML::Node source = sources[i];
        if (!source.IsMap() || !has_key(source, "preset")) continue;
        const std::string path = "sources[" + std::to_string(i) + "]";
        const Value name_value(file, source["preset"], path + ".preset", source.Mark());
        const std::string name = read_nonempty_string(name_value);
        const EmbeddedPreset* preset = find_preset(name);
        if (!preset) {
            std::vector<std::string_view> names;
            for (const EmbeddedPreset& p : embedded_presets()) names.push_back(p.name);
            const auto near = closest_match(name, names);
            name_value.fail("unknown preset \"" + name + "\"" +
                            (near ? "; did you mean \"" + std::string(*near) + "\"?" : "") +
                            " Known presets: " + known_presets());
        }
        const PresetDocument preset_doc = load_preset(*preset);
        PresetOrigins::Filled origin;
        origin.owner = path;
        if (const auto source_name = scalar_at(source, "name")) origin.owner += " (" + *source_name + ")";
        origin.preset = preset;
        origin.preset_key = name_value.mark();
        for (auto it = preset_doc.source.begin(); it != preset_doc.source.end(); ++it) {
            const std::string key = it->first.Scalar();
            if (has_key(source, key)) continue;  // keys given on the source override the preset's
            source[key] = it->second;
            origin.path = path + "." + key;
            origin.filled_from = it->second.Mark();
            origins.add(origin);
        }
        Url url;
        const auto url_text = scalar_at(source, "url");
        if (preset_doc.host && url_text && !parse_url(*url_text, url))
            fill_host(document, preset_doc.host, url, origin, origins);
    }
    return origins;
}

namespace {

// Keeps the file's look: flow collections stay flow, quoted scalars stay quoted (a quoted
// "2000" is a string to the schema, a plain one a number).
void emit(YAML::Emitter& out, const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Map:
        if (node.Style() == YAML::EmitterStyle::Flow) out << YAML::Flow;
        out << YAML::BeginMap;
        for (auto it = node.begin(); it != node.end(); ++it) {
            out << YAML::Key;
            emit(out, it->first);
            out << YAML::Value;
            emit(out, it->second);
        }
        out << YAML::EndMap;
        break;
    case YAML::NodeType::Sequence:
        if (node.Style() == YAML::EmitterStyle::Flow) out << YAML::Flow;
        out << YAML::BeginSeq;
        for (const YAML::Node& item : node) emit(out, item);
        out << YAML::EndSeq;
        break;
    case YAML::NodeType::Scalar:
        if (node.Tag() == "?" || node.Tag().empty())  // plain in the file, or added by a preset
            out << node.Scalar();
        else
            out << YAML::DoubleQuoted << node.Scalar();
        break;
    default:
        out << YAML::Null;
    }
}

}  // namespace

}  // namespace config_detail

std::vector<std::string> preset_names() {
    std::vector<std::string> names;
    for (const auto& p : config_detail::embedded_presets()) names.emplace_back(p.name);
    std::sort(names.begin(), names.end());
    return names;
}

std::string expanded_config_text(std::string_view yaml_text, std::string_view file_name) {
    (void)parse_config(yaml_text, file_name);  // only a valid file is printed
    const std::string file(file_name);
    YAML::Node document = YAML::Load(std::string(yaml_text));
    const config_detail::PresetOrigins origins = config_detail::apply_presets(file, document);

    std::string header = "# " + file + " as mdagg reads it, presets applied. Secrets show as written.\n";
    std::string owner, keys;
    const auto flush = [&] {
        if (!owner.empty()) header += "# " + owner + ":" + keys + "\n";
    };
    for (const auto& f : origins.filled()) {
        const bool is_host = f.path.starts_with("hosts[");
        const std::string key = is_host ? f.path : f.path.substr(f.path.find_first_of('.') + 1);
        const std::string group = f.owner + " from preset " + std::string(f.preset->name) + (is_host ? ", host" : "");
        if (group != owner) {
            flush();
            owner = group;
            keys.clear();
        }
        keys += " " + key;
    }
    flush();

    YAML::Emitter out;
    out.SetIndent(2);
    config_detail::emit(out, document);
    return header + out.c_str() + "\n";
}

std::string expanded_config(const std::string& path) {
    return expanded_config_text(config_detail::read_config_text(path), path);
}

}  // namespace mdagg
