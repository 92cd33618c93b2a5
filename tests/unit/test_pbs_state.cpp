// PBS versions JSON (PascalCase keys) and datastore list JSON (kebab-case keys, maintenance-mode property
// string). pbs_versions.json was recorded from the lab's proxmox-backup-manager stand-in; the verbose and
// datastore samples are written from pbs-api-types (APTUpdateInfo, DataStoreConfig) per platform-facts.md.
#include "fixtures.hpp"
#include "pbs_patch/datastores.hpp"
#include "pbs_patch/pbs_versions.hpp"

#include <doctest/doctest.h>

#include <filesystem>

using namespace pbs_patch;
namespace fs = std::filesystem;

TEST_CASE("versions: default output, one proxmox-backup-server row") {
    const auto v = parse_pbs_versions(fixture("pbs_versions.json"));
    REQUIRE(v.size() == 1);
    CHECK(v[0].package == "proxmox-backup-server");
    CHECK(v[0].version == "3.2.5-1");  // the APT candidate
    CHECK(v[0].old_version == "3.2.4-1");
    CHECK(running_pbs_version(v) == "3.2.4");
    CHECK(v[0].to_json()["extra_info"] == "running version: 3.2.4");
}

TEST_CASE("versions: verbose output, kernel rows without ExtraInfo, empty OldVersion") {
    const auto v = parse_pbs_versions(fixture("pbs_versions_verbose.json"));
    REQUIRE(v.size() == 5);
    CHECK(v[0].extra_info == "running kernel: 6.8.12-4-pve");
    CHECK(running_pbs_version(v) == "3.2.7");
    CHECK_FALSE(v[2].extra_info);
    CHECK_FALSE(v[4].old_version);  // "" means not installed
    CHECK(v[4].version == "not correctly installed");
}

TEST_CASE("versions: errors and garbage are refused") {
    CHECK_THROWS_AS(parse_pbs_versions(""), PbsVersionsError);
    CHECK_THROWS_AS(parse_pbs_versions("Error: unable to read apt package cache"), PbsVersionsError);
    CHECK_THROWS_AS(parse_pbs_versions("{}"), PbsVersionsError);
    CHECK_THROWS_AS(parse_pbs_versions(R"([{"Package":"x"}])"), PbsVersionsError);
    CHECK(parse_pbs_versions("[]").empty());
    CHECK_FALSE(running_pbs_version({}));
}

TEST_CASE("maintenance mode property strings") {
    auto m = parse_maintenance_mode("type=offline,message=\"disk replacement, back Friday\"");
    REQUIRE(m);
    CHECK(m->type == "offline");
    CHECK(m->message == "disk replacement, back Friday");
    m = parse_maintenance_mode("type=read-only");
    REQUIRE(m);
    CHECK(m->type == "read-only");
    CHECK_FALSE(m->message);
    m = parse_maintenance_mode("offline");
    REQUIRE(m);
    CHECK(m->type == "offline");
    CHECK_FALSE(parse_maintenance_mode(""));
    CHECK_FALSE(parse_maintenance_mode("message=x"));
}

TEST_CASE("datastore list: names, paths, maintenance, removable") {
    const auto stores = parse_datastore_list(fixture("datastore_list.json"));
    REQUIRE(stores.size() == 4);
    CHECK(stores[0].name == "store1");
    CHECK(stores[0].path == "/mnt/datastore/store1");
    CHECK(stores[0].comment == "main datastore");
    CHECK_FALSE(stores[0].maintenance_mode);
    CHECK(stores[1].maintenance_mode == "type=offline,message=\"disk replacement, back Friday\"");
    CHECK(stores[3].backing_device);
    CHECK(parse_datastore_list(fixture("datastore_list_empty.json")).empty());
    CHECK_THROWS_AS(parse_datastore_list("Error: connection refused"), DatastoreListError);
    CHECK_THROWS_AS(parse_datastore_list(R"([{"name":"x"}])"), DatastoreListError);
    CHECK_THROWS_AS(parse_datastore_list(R"({"name":"x"})"), DatastoreListError);
}

TEST_CASE("datastore probe: missing, unmounted (empty mount point), available") {
    const fs::path root = fs::temp_directory_path() / "pbs_patch_datastore_test";
    fs::remove_all(root);
    fs::create_directories(root / "mounted" / ".chunks");
    fs::create_directories(root / "empty-mountpoint");

    auto s = probe_datastore({"gone", (root / "gone").string(), {}, {}, {}});
    CHECK_FALSE(s.available());
    CHECK_FALSE(s.ok());
    CHECK(s.problem().find("does not exist") != std::string::npos);

    s = probe_datastore({"store1", (root / "empty-mountpoint").string(), {}, {}, {}});
    CHECK(s.path_exists);
    CHECK_FALSE(s.chunk_store);
    CHECK_FALSE(s.ok());
    CHECK(s.problem().find("no .chunks directory") != std::string::npos);

    s = probe_datastore({"store2", (root / "mounted").string(), {}, std::string("type=read-only"), {}});
    CHECK(s.available());
    CHECK(s.ok());
    REQUIRE(s.maintenance);
    CHECK(s.maintenance->type == "read-only");
    const auto j = s.to_json();
    CHECK(j["maintenance_mode"]["type"] == "read-only");
    CHECK(j["problem"].is_null());

    // A removable datastore that is unplugged is reported, not a failure.
    s = probe_datastore({"usb", "usb", {}, {}, std::string("7b1a2c9e")});
    CHECK_FALSE(s.available());
    CHECK(s.ok());
    fs::remove_all(root);
}
