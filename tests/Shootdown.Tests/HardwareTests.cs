using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Tests;

public class TlbTests
{
    [Fact]
    public void MissFillThenHit()
    {
        var tlb = new Tlb(1536, 12);
        Assert.Equal(-1, tlb.Lookup(1, 100));
        int slot = tlb.Fill(1, 100, 42, Tlb.EntryWritable);
        Assert.Equal(slot, tlb.Lookup(1, 100));
        Assert.Equal(42, tlb.FrameAt(slot));
        Assert.Equal(Tlb.EntryWritable, tlb.FlagsAt(slot));
        Assert.Equal(-1, tlb.Lookup(2, 100)); // other mm: different tag
    }

    [Fact]
    public void FlushOneDropsOnlyThatEntry()
    {
        var tlb = new Tlb(1536, 12);
        tlb.Fill(1, 100, 1, 0);
        tlb.Fill(1, 101, 2, 0);
        Assert.True(tlb.FlushOne(1, 100));
        Assert.False(tlb.FlushOne(1, 100));
        Assert.Equal(-1, tlb.Lookup(1, 100));
        Assert.True(tlb.Lookup(1, 101) >= 0);
    }

    [Fact]
    public void FlushAllEmptiesTheTlb()
    {
        var tlb = new Tlb(1536, 12);
        for (int i = 0; i < 1000; i++)
        {
            tlb.Fill(3, i, i, 0);
        }
        Assert.Equal(1000, tlb.CountValid());
        tlb.FlushAll();
        Assert.Equal(0, tlb.CountValid());
        Assert.Equal(-1, tlb.Lookup(3, 5));
    }

    [Fact]
    public void CapacityIsBoundedAndLeastRecentlyUsedIsEvicted()
    {
        var tlb = new Tlb(1536, 12);
        for (int i = 0; i < 10_000; i++)
        {
            tlb.Fill(1, i, i, 0);
        }
        Assert.Equal(1536, tlb.CountValid());
        // The most recent 1536 sequential pages are what remains.
        Assert.True(tlb.Lookup(1, 9_999) >= 0);
        Assert.Equal(-1, tlb.Lookup(1, 0));
    }

    [Fact]
    public void BadGeometryIsRejected()
    {
        Assert.Throws<ConfigException>(() => new Tlb(100, 12));
        Assert.Throws<ConfigException>(() => new Tlb(36, 12));
    }
}

public class EventQueueTests
{
    [Fact]
    public void OrdersByTimeThenInsertion()
    {
        var q = new EventQueue(2);
        q.Push(50, 1);
        q.Push(10, 2);
        q.Push(50, 3);
        q.Push(10, 4);
        q.Push(30, 5);
        var got = new List<(long, int)>();
        while (q.TryPop(out long t, out int p))
        {
            got.Add((t, p));
        }
        Assert.Equal([(10L, 2), (10L, 4), (30L, 5), (50L, 1), (50L, 3)], got);
    }

    [Fact]
    public void ManyRandomEventsComeOutSorted()
    {
        var rng = new Rng(7);
        var q = new EventQueue();
        for (int i = 0; i < 10_000; i++)
        {
            q.Push(rng.Next(1000), i);
        }
        long last = -1;
        int lastPayload = -1;
        while (q.TryPop(out long t, out int p))
        {
            Assert.True(t > last || (t == last && p > lastPayload));
            last = t;
            lastPayload = p;
        }
    }
}

public class CpumaskTests
{
    [Fact]
    public void SetOrAnyButAndWeight()
    {
        var a = new Cpumask(130);
        var b = new Cpumask(130);
        a.Set(3);
        b.Set(129);
        Assert.False(a.AnyBut(3));
        a.Or(b);
        Assert.True(a.AnyBut(3));
        Assert.Equal(2, a.Weight);
        Assert.Equal(3, a.NextSet(0));
        Assert.Equal(129, a.NextSet(4));
        Assert.Equal(-1, a.NextSet(130));
        a.Clear(129);
        Assert.False(a.AnyBut(3));
    }
}

public class CpuSpeedTests
{
    [Fact]
    public void ScalesTheCoresOwnWorkAndNothingElse()
    {
        CostModel c = CostModel.Xeon2015;
        CostModel fast = c.WithCpuSpeed(2);
        foreach (string n in CostModel.Names)
        {
            long before = Value(c, n), after = Value(fast, n);
            if (CostModel.CoreBoundNames.Contains(n))
            {
                Assert.True(after == (before + 1) / 2 || after == before / 2, $"{n}: {before} -> {after}");
            }
            else
            {
                Assert.True(after == before, $"{n} is not the core's own work but moved: {before} -> {after}");
            }
        }
        // The list itself, written out: every kernel path but the scheduler's periods, and the
        // core's own hardware work; not the APIC, the interconnect, memory or devices.
        string[] expected =
        [
            "PageWalkNs", "InvlpgNs", "FullFlushNs", "ClearPageNs", "CopyPageNs", "CopyToUserPageNs", "UserReadPageNs", "UserStoreNs",
            "IrqEntryExitNs", "FaultEntryNs", "MapPtePerPageNs", "PageAllocNs", "ZoneLockPerPageNs", "ReadpageHoleNs", "ReadSyscallNs",
            "PageCacheInsertNs", "LruPerPageNs", "LockAcquireNs", "ScanPageNs", "UnmapPageNs", "RemoveMappingNs",
            "PageFreeNs", "WritebackSubmitNs", "ContextSwitchNs",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), CostModel.CoreBoundNames.Order(StringComparer.Ordinal));
        foreach (string n in new[] { "SchedLatencyNs", "TickNs", "IpiSendNs", "IpiLatencySameNodeNs", "IpiLatencyRemoteNodeNs", "CacheLineSameNodeNs", "CacheLineRemoteNodeNs", "DramLocalNs", "DramRemoteNodeNs", "IoLatencyNs", "TlbEntries", "TlbWays" })
        {
            Assert.Equal(Value(c, n), Value(fast, n));
        }
        Assert.Equal(425, c.WithCpuSpeed(8).UserReadPageNs); // 3400 / 8
        Assert.Equal(c, c.WithCpuSpeed(1));
        Assert.Equal(2 * c.FaultEntryNs, c.WithCpuSpeed(0.5).FaultEntryNs);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.05)]
    [InlineData(11.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void RefusesSpeedsOutOfRange(double speed)
    {
        var e = Assert.Throws<ConfigException>(() => CostModel.Xeon2015.WithCpuSpeed(speed));
        Assert.Contains("--cpu-speed must be in 0.1..10", e.Message, StringComparison.Ordinal);
    }

    private static long Value(CostModel c, string n) =>
        c.Get(n);
}

public class CoreClockTests
{
    [Fact]
    public void AMachinesClockScalesTheKernelPathsAndNothingElse()
    {
        CostModel c = CostModel.Xeon2015;
        Assert.Equal(CostModel.ReferenceCoreClockMhz, c.CoreClockMhz);
        Assert.Same(c, c.AtCoreClock()); // the reference clock: the model as stated
        CostModel half = (c with { CoreClockMhz = CostModel.ReferenceCoreClockMhz / 2 }).AtCoreClock();
        foreach (string n in CostModel.Names)
        {
            long before = c.Get(n), after = half.Get(n);
            if (CostModel.KernelPathNames.Contains(n))
            {
                Assert.True(after == 2 * before, $"{n}: {before} -> {after}");
            }
            else if (n != nameof(CostModel.CoreClockMhz))
            {
                Assert.True(after == before, $"{n} is no kernel path but moved: {before} -> {after}");
            }
        }
        // Every kernel path but the scheduler's periods; no hardware constant, not even the core's
        // own (a machine file gives those for its core).
        Assert.Equal(
            CostModel.CoreBoundNames.Where(n => !CostModel.IsHardware(n)).Order(StringComparer.Ordinal),
            CostModel.KernelPathNames.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(nameof(CostModel.SchedLatencyNs), CostModel.KernelPathNames);
        Assert.DoesNotContain(nameof(CostModel.TickNs), CostModel.KernelPathNames);
        Assert.Equal(2571, (c with { CoreClockMhz = 1870 }).AtCoreClock().FaultEntryNs); // 1414 x 3400 / 1870 = 2570.9
        // A slow clock keeps every constant within its range.
        CostModel slowest = (c.With("ContextSwitchNs", CostModel.MaxNs) with { CoreClockMhz = 100 }).AtCoreClock();
        Assert.Equal(CostModel.MaxNs, slowest.ContextSwitchNs);
        slowest.Validate();
    }

    [Fact]
    public void ARunsConfigurationFromBeforeTheClockReplaysAtTheReferenceClock()
    {
        RunConfig cfg = RunConfig.Create(machine: "gorman-4node", scaleDivisor: 64);
        Assert.Equal(1870, cfg.Costs.CoreClockMhz);
        Assert.Equal(cfg, ConfigFile.FromJson(ConfigFile.ToJson(cfg), "now.json"));
        // The JSON of a run made before the key existed: every constant but the clock and those
        // added after it (the read path's, the work per clock). Its cores were the reference's.
        var node = System.Text.Json.Nodes.JsonNode.Parse(ConfigFile.ToJson(cfg))!.AsObject();
        foreach (string k in new[] { "core_clock_mhz", "read_syscall_ns", "copy_to_user_page_ns", "core_ipc_pct", "threads_per_core", "smt_throughput_pct" })
        {
            Assert.True(node["costs"]!.AsObject().Remove(k));
        }
        RunConfig old = ConfigFile.FromJson(node.ToJsonString(), "old.json");
        Assert.Equal(cfg.Costs with { CoreClockMhz = CostModel.ReferenceCoreClockMhz, CoreIpcPct = CostModel.ReferenceCoreIpcPct, ThreadsPerCore = 1, SmtThroughputPct = 200 }, old.Costs);
        // A file that names a constant added after the clock is no such file: without the clock key
        // it takes the machine's clock (and here its work per clock), as any partial costs table does.
        var edited = System.Text.Json.Nodes.JsonNode.Parse(ConfigFile.ToJson(cfg))!.AsObject();
        Assert.True(edited["costs"]!.AsObject().Remove("core_clock_mhz"));
        Assert.Equal(cfg.Costs, ConfigFile.FromJson(edited.ToJsonString(), "edited.json").Costs);
        // A configuration that sets a few constants keeps the machine's clock and work per clock.
        RunConfig partial = ConfigFile.FromToml("machine = \"gorman-4node\"\n[costs]\nipi_send_ns = 90\n", "p.toml");
        Assert.Equal(1870, partial.Costs.CoreClockMhz);
        Assert.Equal(84, partial.Costs.CoreIpcPct);
        Assert.Equal(90, partial.Costs.IpiSendNs);
    }

    [Fact]
    public void ARunsConfigurationFromBeforeTheWorkPerClockReplaysAtTheReferenceCores()
    {
        RunConfig cfg = RunConfig.Create(machine: "gorman-4node", scaleDivisor: 64);
        Assert.Equal(84, cfg.Costs.CoreIpcPct);
        var node = System.Text.Json.Nodes.JsonNode.Parse(ConfigFile.ToJson(cfg))!.AsObject();
        // A run's configuration holds the constants and nothing derived from them.
        Assert.Equal(CostModel.Names.Select(CostModel.SnakeCase).Order(StringComparer.Ordinal), node["costs"]!.AsObject().Select(kv => kv.Key).Order(StringComparer.Ordinal));
        Assert.True(node["costs"]!.AsObject().Remove("core_ipc_pct"));
        Assert.True(node["costs"]!.AsObject().Remove("threads_per_core"));
        Assert.True(node["costs"]!.AsObject().Remove("smt_throughput_pct"));
        // Written with the clock but before the work per clock: the clock stays, the cores are the
        // reference's (and, as every run then, one thread a core).
        RunConfig old = ConfigFile.FromJson(node.ToJsonString(), "old.json");
        Assert.Equal(cfg.Costs with { CoreIpcPct = CostModel.ReferenceCoreIpcPct, ThreadsPerCore = 1, SmtThroughputPct = 200 }, old.Costs);
        Assert.Equal(1870, old.Costs.CoreClockMhz);
        // A costs table that is not a whole run's set takes the preset's value.
        RunConfig partial = ConfigFile.FromToml("machine = \"gorman-4node\"\n[costs]\ncore_clock_mhz = 1870\n", "p.toml");
        Assert.Equal(84, partial.Costs.CoreIpcPct);
        // Nor is a table without the work per clock that names a key added after it: it keeps the
        // keys it names and takes the preset's work per clock.
        var later = System.Text.Json.Nodes.JsonNode.Parse(ConfigFile.ToJson(cfg))!.AsObject();
        Assert.True(later["costs"]!.AsObject().Remove("core_ipc_pct"));
        RunConfig edited = ConfigFile.FromJson(later.ToJsonString(), "edited.json");
        Assert.Equal(cfg.Costs, edited.Costs);
    }

    [Fact]
    public void ARunsConfigurationFromBeforeHyperthreadsReplaysWithOneThreadACore()
    {
        // Session 47 gave the seed's machines two threads a core. A run's JSON written before then
        // names every other constant: it replays as it ran, without the SMT domain.
        var (cfg, old) = ReplayedWithout("gorman-4node", "threads_per_core", "smt_throughput_pct");
        Assert.Equal(2, cfg.Costs.ThreadsPerCore);
        Assert.Equal(cfg.Costs with { ThreadsPerCore = 1, SmtThroughputPct = 200 }, old.Costs);
        Assert.Equal(1870, old.Costs.CoreClockMhz);
        Assert.Equal(84, old.Costs.CoreIpcPct);
        // A costs table that is not a whole run's set keeps the machine's threads.
        RunConfig partial = ConfigFile.FromToml("machine = \"gorman-4node\"\n[costs]\nipi_send_ns = 90\n", "p.toml");
        Assert.Equal(2, partial.Costs.ThreadsPerCore);
        Assert.Equal(115, partial.Costs.SmtThroughputPct);
    }

    /// <summary>A preset's configuration at 1/64, and its JSON replayed without <paramref name="keys"/> in its costs table (a result from before those keys).</summary>
    private static (RunConfig Now, RunConfig Old) ReplayedWithout(string machine, params string[] keys)
    {
        RunConfig cfg = RunConfig.Create(machine: machine, scaleDivisor: 64);
        var node = System.Text.Json.Nodes.JsonNode.Parse(ConfigFile.ToJson(cfg))!.AsObject();
        foreach (string k in keys)
        {
            Assert.True(node["costs"]!.AsObject().Remove(k));
        }
        return (cfg, ConfigFile.FromJson(node.ToJsonString(), "old.json"));
    }

    [Fact]
    public void ARunsConfigurationFromBeforeTheLoneThreadsSpeedReplaysWithEveryThreadAtTheConstants()
    {
        // Session 48 made a thread alone on its core faster (smt_throughput_pct, 115 on the seed's
        // machines). A run's JSON from session 47 names every other constant, threads_per_core
        // included: it replays with its hyperthreads, every thread at the constants' speed.
        var (cfg, old) = ReplayedWithout("gorman-1node", "smt_throughput_pct");
        Assert.Equal(115, cfg.Costs.SmtThroughputPct);
        Assert.Equal(cfg.Costs with { SmtThroughputPct = 200 }, old.Costs);
        Assert.Equal(2, old.Costs.ThreadsPerCore);
        // A costs table that is not a whole run's set keeps the machine's value.
        RunConfig partial = ConfigFile.FromToml("machine = \"gorman-1node\"\n[costs]\nthreads_per_core = 1\n", "p.toml");
        Assert.Equal(115, partial.Costs.SmtThroughputPct);
    }

    [Fact]
    public void ALoneThreadsConstantsAreTheCoreBoundOnesScaledBySmtThroughputOver200()
    {
        CostModel c = MachineSpec.Preset("gorman-4node").Costs.AtCoreClock();
        Assert.Equal(115, c.SmtThroughputPct);
        CostModel lone = c.LoneThread();
        foreach (string n in CostModel.Names)
        {
            long v = c.Get(n);
            long expected = CostModel.CoreBoundNames.Contains(n) && v != 0 ? Math.Max(1, (long)Math.Round(v * 115 / 200.0, MidpointRounding.AwayFromZero)) : v;
            Assert.Equal(expected, lone.Get(n));
        }
        Assert.Equal(c.IpiLatencyRemoteNodeNs, lone.IpiLatencyRemoteNodeNs); // the interconnect is no faster
        Assert.Same(CostModel.Xeon2015, CostModel.Xeon2015.LoneThread()); // 200: every thread at the constants
        Assert.Equal(200, CostModel.Xeon2015.SmtThroughputPct);
        Assert.Equal("cost constant SmtThroughputPct must be in 100..200, got 99", Assert.Throws<ConfigException>(() => c.With("smt_throughput_pct", 99)).Message);
        Assert.All(new[] { "gorman-1node", "brickland3", "cascadelake-2s" }, m => Assert.Equal(115, MachineSpec.Preset(m).Costs.SmtThroughputPct));
        Assert.All(new[] { "small-2node", "tiny" }, m => Assert.Equal(200, MachineSpec.Preset(m).Costs.SmtThroughputPct));
    }

    [Fact]
    public void ACoresWorkPerClockScalesTheKernelPathsAsTheClockDoes()
    {
        CostModel c = CostModel.Xeon2015;
        Assert.Equal(CostModel.ReferenceCoreIpcPct, c.CoreIpcPct);
        CostModel halfIpc = (c with { CoreIpcPct = 50 }).AtCoreClock();
        CostModel halfClock = (c with { CoreClockMhz = CostModel.ReferenceCoreClockMhz / 2 }).AtCoreClock();
        foreach (string n in CostModel.Names.Where(n => n is not (nameof(CostModel.CoreIpcPct) or nameof(CostModel.CoreClockMhz))))
        {
            Assert.True(halfIpc.Get(n) == halfClock.Get(n), $"{n}: {halfIpc.Get(n)} with half the work per clock, {halfClock.Get(n)} at half the clock");
        }
        // The E7-4807: 1414 x 3400 / 1870 x 100 / 84 = 3060.7.
        Assert.Equal(3061, (c with { CoreClockMhz = 1870, CoreIpcPct = 84 }).AtCoreClock().FaultEntryNs);
        // At the reference work per clock the factor is exactly the clock ratio (runs made before the
        // work per clock existed stay byte-identical).
        Assert.Equal(3400.0 / 1870, (c with { CoreClockMhz = 1870 }).KernelPathFactor());
        var e = Assert.Throws<ConfigException>(() => c.With("core_ipc_pct", 10));
        Assert.Contains("CoreIpcPct must be in 25..400", e.Message, StringComparison.Ordinal);
        // A machine file's work per clock reaches the simulation's constants.
        string half = TestKit.TempFile("ipc50.toml", "name = \"m\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\ncore_ipc_pct = 50\n");
        Assert.Equal(CostModel.Xeon2015.FaultEntryNs, MachineSpec.Resolve(half).Costs.FaultEntryNs); // stated for the reference core
        Assert.Equal(2 * CostModel.Xeon2015.FaultEntryNs, new Sim(RunConfig.Create(machine: half, scaleDivisor: 1)).Costs.FaultEntryNs);
        // The preset that sets it; the others have reference cores.
        Assert.Equal(84, MachineSpec.Preset("gorman-4node").Costs.CoreIpcPct);
        Assert.All(MachineSpec.PresetNames.Where(m => m != "gorman-4node"), m => Assert.Equal(100, MachineSpec.Preset(m).Costs.CoreIpcPct));
    }

    [Fact]
    public void AMachineFilesClockReachesTheSimulationAndSlowsItsKernel()
    {
        string Machine(string clock) =>
            TestKit.TempFile($"clock{clock}.toml", $"name = \"m\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\ncore_clock_mhz = {clock}\n");
        MachineSpec slow = MachineSpec.Resolve(Machine("1700"));
        Assert.Equal(1700, slow.Costs.CoreClockMhz);
        Assert.Equal(CostModel.Xeon2015.FaultEntryNs, slow.Costs.FaultEntryNs); // stated for the reference core
        var sim = new Sim(RunConfig.Create(machine: Machine("1700"), scaleDivisor: 1));
        Assert.Equal(2 * CostModel.Xeon2015.FaultEntryNs, sim.Costs.FaultEntryNs); // what the kernel pays here
        Assert.Equal(CostModel.Xeon2015.DramLocalNs, sim.Costs.DramLocalNs);
        // The same run at half the clock spends more system time; user time, set by the machine's
        // own loop, does not move.
        RunResult atRef = Runner.Run(RunConfig.Create(machine: Machine("3400"), scaleDivisor: 1));
        RunResult atHalf = Runner.Run(RunConfig.Create(machine: Machine("1700"), scaleDivisor: 1));
        Assert.True(atHalf.SystemS > 1.3 * atRef.SystemS, $"{atHalf.SystemS} vs {atRef.SystemS}");
        var e = Assert.Throws<ConfigException>(() => MachineSpec.Resolve(Machine("50")));
        Assert.Contains("CoreClockMhz must be in 100..10000", e.Message, StringComparison.Ordinal);
        Assert.Contains("core_clock_mhz", e.Message, StringComparison.Ordinal);
    }
}
