// LD_PRELOAD for the name-resolution tests: a resolver the test controls, so a host name that
// resolves to IPv6 only, or to IPv6 and IPv4 in a chosen order, exists on every machine. No
// /etc/hosts entry can be relied on: Debian's installer writes `::1 localhost ip6-localhost
// ip6-loopback`, but containers write their own (CI's here has no IPv6 name at all, and recent
// Docker omits the ::1 lines when the container has no IPv6).
//
// MDAGG_TEST_HOSTS="name=addr[,addr...][;name=...]": getaddrinfo(name) gives these numeric
// addresses, in this order, as one list; every other name goes to the real getaddrinfo.
//
// AI_ADDRCONFIG is answered as glibc answers it on a host whose only IPv6 address is loopback
// (a container on Docker's default network): glibc ignores loopback addresses there, narrows
// the lookup to IPv4 and an IPv6-only name no longer resolves to its ::1 (checked with glibc
// 2.36 in a network namespace with 127.0.0.2 on lo: "::1" -> EAI_ADDRFAMILY, "ip6-localhost"
// -> 127.0.0.1). A daemon asking with AI_ADDRCONFIG fails these tests, as it would there.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <strings.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using GetAddrInfo = int (*)(const char*, const char*, const addrinfo*, addrinfo**);

// The addresses the table gives `node`; false when the table does not name it.
bool lookup(std::string_view table, std::string_view node, std::vector<std::string>& out) {
    while (!table.empty()) {
        const auto end = table.find(';');
        std::string_view entry = table.substr(0, end);
        table = end == std::string_view::npos ? std::string_view{} : table.substr(end + 1);
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos || eq != node.size() ||
            ::strncasecmp(entry.data(), node.data(), node.size()) != 0)
            continue;
        std::string_view addrs = entry.substr(eq + 1);
        while (!addrs.empty()) {
            const auto comma = addrs.find(',');
            out.emplace_back(addrs.substr(0, comma));
            addrs = comma == std::string_view::npos ? std::string_view{} : addrs.substr(comma + 1);
        }
        return true;
    }
    return false;
}

}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
    static const auto real = reinterpret_cast<GetAddrInfo>(::dlsym(RTLD_NEXT, "getaddrinfo"));
    const char* table = std::getenv("MDAGG_TEST_HOSTS");
    std::vector<std::string> addrs;
    if (node == nullptr || table == nullptr || !lookup(table, node, addrs)) return real(node, service, hints, res);

    const bool addrconfig = hints != nullptr && (hints->ai_flags & AI_ADDRCONFIG) != 0;
    addrinfo numeric{};
    if (hints != nullptr) {
        numeric.ai_family = hints->ai_family;
        numeric.ai_socktype = hints->ai_socktype;
        numeric.ai_protocol = hints->ai_protocol;
        numeric.ai_flags = hints->ai_flags & AI_NUMERICSERV;
    }
    numeric.ai_flags |= AI_NUMERICHOST;
    // Each address's own list, chained in table order: glibc's freeaddrinfo frees node by node.
    addrinfo* head = nullptr;
    addrinfo** tail = &head;
    for (const std::string& addr : addrs) {
        in6_addr v6{};
        if (addrconfig && ::inet_pton(AF_INET6, addr.c_str(), &v6) == 1) continue;
        addrinfo* one = nullptr;
        if (real(addr.c_str(), service, &numeric, &one) != 0) continue;
        *tail = one;
        while (*tail != nullptr) tail = &(*tail)->ai_next;
    }
    if (head == nullptr) return EAI_NONAME;
    *res = head;
    return 0;
}
