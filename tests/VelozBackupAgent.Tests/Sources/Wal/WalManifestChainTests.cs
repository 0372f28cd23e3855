using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Sources.Wal;

namespace VelozBackupAgent.Tests.Sources.Wal;

/// <summary>Delta manifests as pure logic: what a sync writes, and how a chain of them resolves back to every segment.</summary>
public sealed class WalManifestChainTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));

    /// <summary>Stored manifests by name, as a store would hold their bytes.</summary>
    private readonly Dictionary<string, byte[]> _store = new(StringComparer.Ordinal);

    private static string Sha(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static WalManifestSegment Segment(int n, string content = "") => new($"orders_{n:D16}.wal", 100 + n, Sha($"{n}:{content}"));

    /// <summary>The complete view of one sync, as WalSource builds it.</summary>
    private WalManifest Complete(IEnumerable<WalManifestSegment> segments, string active = "a") => new(
        WalManifest.FormatName,
        WalManifest.CurrentVersion,
        "veloz-1",
        _clock.GetUtcNow(),
        "Scheduled",
        "/var/lib/veloz/wal",
        new WalManifestActive("orders_current.wal", $"orders_current_{_clock.GetUtcNow():yyyyMMdd_HHmmss}.wal", active.Length, Sha(active)),
        [.. segments.OrderBy(s => s.Name, StringComparer.Ordinal)],
        [],
        [],
        [],
        "0640",
        "0750");

    private static async Task<byte[]> BytesAsync(WalManifest manifest)
    {
        using var buffer = new MemoryStream();
        await manifest.WriteAsync(buffer, CancellationToken.None);
        return buffer.ToArray();
    }

    /// <summary>Writes what <see cref="WalManifestChain.Next"/> decides into the fake store; returns the new tip.</summary>
    private async Task<(WalChainTip Tip, WalManifest Written, string Name)> SyncAsync(WalManifest complete, WalChainTip? tip, int interval = 96)
    {
        var written = WalManifestChain.Next(complete, tip, interval);
        var bytes = await BytesAsync(written);
        var name = $"wal-manifest_{complete.CreatedAt:yyyyMMdd_HHmmss}.json";
        _store[name] = bytes;
        _clock.Advance(TimeSpan.FromMinutes(5));
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        return (WalChainTip.Of(name, sha, complete with { Type = written.Type, Depth = written.Depth }), written, name);
    }

    private Task<Stream?> OpenAsync(string name, CancellationToken cancellationToken) =>
        Task.FromResult<Stream?>(_store.TryGetValue(name, out var bytes) ? new MemoryStream(bytes) : null);

    private async Task<WalManifest> ResolveAsync(string name)
    {
        var (manifest, _) = await WalManifestChain.ReadAsync(new MemoryStream(_store[name]), CancellationToken.None);
        return await WalManifestChain.ResolveAsync(name, manifest, OpenAsync, "local", CancellationToken.None);
    }

    [Fact]
    public async Task The_first_sync_writes_a_full_version_2_manifest_and_a_sync_with_nothing_new_an_empty_delta()
    {
        var segments = Enumerable.Range(1, 500).Select(n => Segment(n)).ToList();
        var (tip, first, firstName) = await SyncAsync(Complete(segments), null);
        first.Type.Should().Be("full");
        first.Version.Should().Be(2);
        first.Segments.Should().HaveCount(500);

        var (_, second, _) = await SyncAsync(Complete(segments), tip);

        second.Type.Should().Be("delta");
        second.Parent.Should().Be(new WalManifestParent(firstName, tip.Sha256));
        second.Depth.Should().Be(1);
        second.Added.Should().BeEmpty();
        second.Removed.Should().BeEmpty();
        var bytes = await BytesAsync(second);
        bytes.Length.Should().BeLessThan(800, "a no-op sync costs a header, its parent and its active snapshot, not the segment list");
        using var json = JsonDocument.Parse(bytes);
        json.RootElement.TryGetProperty("segments", out _).Should().BeFalse("a reader that predates deltas must not take the additions for the whole directory");
    }

    [Fact]
    public async Task A_delta_lists_segments_added_changed_and_removed_and_applied_to_its_parent_gives_the_sync_exactly()
    {
        var before = Enumerable.Range(1, 200).Select(n => Segment(n)).ToList();
        var (tip, _, _) = await SyncAsync(Complete(before), null);
        var after = before.Where(s => s.Name != Segment(3).Name && s.Name != Segment(7).Name).Select(s => s.Name == Segment(10).Name ? Segment(10, "rewritten") : s)
            .Concat(Enumerable.Range(201, 10).Select(n => Segment(n))).ToList();
        var complete = Complete(after, active: "bb");

        var (_, delta, name) = await SyncAsync(complete, tip);

        delta.Added!.Select(s => s.Name).Should().Equal([Segment(10).Name, .. Enumerable.Range(201, 10).Select(n => Segment(n).Name)]);
        delta.Removed.Should().Equal(Segment(3).Name, Segment(7).Name);
        var resolved = await ResolveAsync(name);
        resolved.Segments.Should().Equal(complete.Segments);
        resolved.Active.Should().Be(complete.Active);
        resolved.FileMode.Should().Be("0640");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Every_sync_of_a_random_history_resolves_to_exactly_what_the_directory_held(int seed)
    {
        var random = new Random(seed);
        var present = Enumerable.Range(1, 100).ToDictionary(n => Segment(n).Name, n => Segment(n));
        var next = 101;
        var views = new List<(string Name, WalManifest Complete)>();
        WalChainTip? tip = null;
        for (var sync = 0; sync < 40; sync++)
        {
            for (var i = random.Next(0, 4); i > 0; i--)
            {
                var s = Segment(next++);
                present[s.Name] = s;
            }

            if (random.Next(4) == 0 && present.Count > 0)
            {
                present.Remove(present.Keys.Order(StringComparer.Ordinal).First());
            }

            var complete = Complete(present.Values, active: new string('x', random.Next(1, 9)));
            (tip, _, var name) = await SyncAsync(complete, tip, interval: 7);
            views.Add((name, complete));
        }

        foreach (var (name, complete) in views)
        {
            var resolved = await ResolveAsync(name);
            resolved.Segments.Should().Equal(complete.Segments, $"{name} must rebuild its sync exactly");
            resolved.Active.Should().Be(complete.Active);
        }

        var fulls = 0;
        foreach (var (name, _) in views)
        {
            fulls += (await WalManifest.ReadAsync(new MemoryStream(_store[name]))).Type == "full" ? 1 : 0;
        }

        fulls.Should().Be(6, "a full manifest every 7 syncs: syncs 1, 8, 15, 22, 29, 36");
    }

    [Fact]
    public async Task A_missing_parent_is_an_error_naming_both_manifests_never_a_shorter_list()
    {
        var segments = Enumerable.Range(1, 10).Select(n => Segment(n)).ToList();
        var (tip, _, full) = await SyncAsync(Complete(segments), null);
        (tip, _, var middle) = await SyncAsync(Complete([.. segments, Segment(11)]), tip);
        (_, _, var newest) = await SyncAsync(Complete([.. segments, Segment(11), Segment(12)]), tip);
        _store.Remove(middle);

        var act = () => ResolveAsync(newest);

        var error = (await act.Should().ThrowAsync<WalManifestChainException>()).Which;
        error.Missing.Should().BeTrue();
        error.Message.Should().Contain(newest).And.Contain(middle).And.Contain("local store does not hold");
        _store.ContainsKey(full).Should().BeTrue();
    }

    [Fact]
    public async Task A_parent_with_other_bytes_than_its_child_recorded_is_refused()
    {
        var segments = Enumerable.Range(1, 10).Select(n => Segment(n)).ToList();
        var (tip, _, full) = await SyncAsync(Complete(segments), null);
        (_, _, var delta) = await SyncAsync(Complete([.. segments, Segment(11)]), tip);

        // Still a valid manifest, one segment's checksum changed: only the recorded sha256 can tell.
        _store[full] = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(_store[full]).Replace(Segment(4).Sha256, Segment(4, "forged").Sha256, StringComparison.Ordinal));

        var error = (await ((Func<Task>)(() => ResolveAsync(delta))).Should().ThrowAsync<WalManifestChainException>()).Which;
        error.Missing.Should().BeFalse();
        error.Message.Should().Contain(full).And.Contain("sha256");
    }

    [Fact]
    public async Task A_parent_that_is_not_a_manifest_is_refused()
    {
        var (tip, _, full) = await SyncAsync(Complete([Segment(1)]), null);
        (_, _, var delta) = await SyncAsync(Complete([Segment(1), Segment(2)]), tip);
        _store[full] = Encoding.UTF8.GetBytes("{ not json");

        var error = (await ((Func<Task>)(() => ResolveAsync(delta))).Should().ThrowAsync<WalManifestChainException>()).Which;
        error.Message.Should().Contain(full);
    }

    [Fact]
    public async Task A_chain_that_loops_is_refused_not_followed_forever()
    {
        var (tip, _, _) = await SyncAsync(Complete([Segment(1)]), null);
        var (_, delta, name) = await SyncAsync(Complete([Segment(1), Segment(2)]), tip);

        // A delta whose parent is itself (hand-edited): the checksum cannot match its own bytes, but the loop is caught first.
        var looping = delta with { Parent = new WalManifestParent(name, new string('0', 64)) };
        _store[name] = await BytesAsync(looping);

        var error = (await ((Func<Task>)(() => ResolveAsync(name))).Should().ThrowAsync<WalManifestChainException>()).Which;
        error.Message.Should().Contain("loop");
    }

    [Fact]
    public async Task A_delta_that_removes_a_segment_its_parent_does_not_list_is_inconsistent()
    {
        var (tip, _, _) = await SyncAsync(Complete([Segment(1)]), null);
        var (_, delta, name) = await SyncAsync(Complete([Segment(1), Segment(2)]), tip);
        _store[name] = await BytesAsync(delta with { Removed = [Segment(9).Name] });

        var error = (await ((Func<Task>)(() => ResolveAsync(name))).Should().ThrowAsync<WalManifestChainException>()).Which;
        error.Message.Should().Contain(Segment(9).Name).And.Contain("inconsistent");
    }

    [Fact]
    public async Task A_large_change_or_interval_one_writes_a_full_manifest()
    {
        var segments = Enumerable.Range(1, 200).Select(n => Segment(n)).ToList();
        var (tip, _, _) = await SyncAsync(Complete(segments), null);

        WalManifestChain.Next(Complete(Enumerable.Range(1, 200).Select(n => Segment(n, "all rewritten"))), tip, 96).Type
            .Should().Be("full", "a delta of every segment costs as much as a full manifest and lengthens the chain");
        WalManifestChain.Next(Complete(segments), tip, 1).Type.Should().Be("full", "FullManifestInterval 1 writes only full manifests");
        WalManifestChain.Next(Complete(segments), tip with { Depth = 95 }, 96).Type.Should().Be("full", "the 96th manifest of a chain starts a new one");
        WalManifestChain.Next(Complete(segments), tip with { Depth = 94 }, 96).Depth.Should().Be(95);
    }

    [Fact]
    public async Task A_version_2_delta_reads_back_equal_and_a_malformed_one_is_refused()
    {
        var (tip, _, _) = await SyncAsync(Complete([Segment(1)]), null);
        var (_, delta, name) = await SyncAsync(Complete([Segment(2)]), tip);

        var (read, _) = await WalManifestChain.ReadAsync(new MemoryStream(_store[name]), CancellationToken.None);
        read.Should().BeEquivalentTo(delta);

        var text = Encoding.UTF8.GetString(_store[name]);
        foreach (var broken in new[]
        {
            text.Replace("\"type\": \"delta\"", "\"type\": \"partial\"", StringComparison.Ordinal),
            text.Replace($"\"sha256\":\"{tip.Sha256}\"", "\"sha256\":\"nope\"", StringComparison.Ordinal),
            text.Replace("\"depth\": 1", "\"depth\": 0", StringComparison.Ordinal),
        })
        {
            broken.Should().NotBe(text);
            var act = () => WalManifest.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(broken)));
            await act.Should().ThrowAsync<InvalidDataException>();
        }
    }
}
