using CsCheck;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>mm/migrate.c and NUMA balancing: the migration path, its flushes per policy, the hinting fault, and whole runs.</summary>
/// <remarks>In the "console" collection: some tests run the CLI in process, which redirects Console.Out/Error (tests of other classes doing the same must not run at the same time).</remarks>
[Collection("console")]
public class MigrationTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public void TheStoreShareIsAWorkloadParameter(int storePercent)
    {
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "migrate-bounce", policy: "linux-6.4")
            with { WorkloadParams = new Workloads.WorkloadParams { StorePercent = storePercent } };
        var sim = new Sim(cfg);
        sim.Run();
        // Stores dirty the pages they hit (the PTE's dirty bit, moved to the page at unmap and exit).
        long dirty = sim.Files.Sum(f => f.DirtyIndices.Count);
        Assert.True(storePercent == 0 ? dirty == 0 : dirty > 100, $"{dirty} dirty pages with {storePercent}% stores");
        Assert.Contains($"\"store_percent\": {storePercent}", ConfigFile.ToJson(cfg), StringComparison.Ordinal);
        Assert.Equal(storePercent, ConfigFile.FromJson(ConfigFile.ToJson(cfg), "t").WorkloadParams.StorePercent);
    }

    [Fact]
    public void StorePercentIsCheckedAndOnlyForTheMigrationWorkloads()
    {
        var (code, _, err) = CliTests.Cli("run", "--machine", "small-2node", "--workload", "migrate-bounce", "--store-percent", "101");
        Assert.Equal(2, code);
        Assert.Contains("0..100", err, StringComparison.Ordinal);
        (code, _, err) = CliTests.Cli("run", "--machine", "tiny", "--store-percent", "10");
        Assert.Equal(2, code);
        Assert.Contains("takes none", err, StringComparison.Ordinal);
    }

    /// <summary>
    /// migrate-bounce on small-2node, not run: pmbench-0 on CPU 0 and pmbench-1 on CPU 4 share one
    /// mm (both loaded, so both in its cpumask); migratepages (its own mm) is on CPU 3.
    /// </summary>
    private sealed class Bounce
    {
        public Bounce(string policy, int scaleDivisor = 16, Policies.PolicyParams? pp = null)
        {
            Sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: scaleDivisor, workload: "migrate-bounce", policy: policy, policyParams: pp));
            Mm = Sim.Mms[0];
            Vma = Mm.Vmas[0];
            foreach (SimTask t in Sim.UserTasks.Take(2))
            {
                Cpu c = t.HomeCpu;
                c.ActiveMm = Mm.Id;
                c.Lazy = false;
                c.Current = t;
                Mm.CpuMask.Set(c.Id);
            }
            Migrator = Sim.UserTasks[2];
        }

        public Sim Sim { get; }
        public MmStruct Mm { get; }
        public Vma Vma { get; }
        public SimTask Migrator { get; }

        public Exec On(int cpu, SimTask? task = null) => TestKit.ExecOn(Sim, cpu, 0, task);

        /// <summary>pmbench-0 write-faults pages [0, n) on node 0 and stores to each (cached in CPU 0's TLB; CPU 4 loads them too), then lru_add_drain.</summary>
        public void Populate(int n)
        {
            Exec ex = On(0);
            for (long i = 0; i < n; i++)
            {
                long vpn = Vma.VpnOf(i);
                Assert.Equal(Hardware.Mmu.Access.Fault, Sim.Mmu.Touch(ex, Mm, vpn, write: true));
                Sim.Fault.HandleMmFault(ex, ex.Task, Vma, i, write: true, out var wait);
                Assert.Null(wait);
                Assert.NotEqual(Hardware.Mmu.Access.Fault, Sim.Mmu.Touch(ex, Mm, vpn, write: true));
                Assert.NotEqual(Hardware.Mmu.Access.Fault, Sim.Mmu.Touch(On(4, Sim.UserTasks[1]), Mm, vpn, write: false));
            }
            Sim.Swap.LruAddDrain(ex);
        }

        public int FrameOf(long i) => Pte.Frame(Mm.PageTable.Get(Vma.VpnOf(i)));

        /// <summary>queue_pages_range of migrate_pages(2): isolates pages [0, n).</summary>
        public int[] Isolate(Exec ex, int n)
        {
            var list = new int[n];
            for (int i = 0; i < n; i++)
            {
                list[i] = FrameOf(i);
                Assert.True(Sim.Migrate.IsolateLruPage(ex, list[i]));
            }
            return list;
        }

        public IEnumerable<Yield> MigrateTo(Exec ex, int[] list, int node) =>
            Sim.Migrate.MigratePages(ex, Migrator, list, list.Length, node, MigrateMode.Sync, MigrateReason.Syscall);
    }

    [Theory]
    [InlineData("vanilla")]
    [InlineData("linux-4.3")]
    [InlineData("linux-4.13")]
    [InlineData("linux-6.4")]
    public void MigratePagesRestoresMappingsPreservesContentsAndFreesTheOldFrames(string policy)
    {
        var b = new Bounce(policy);
        b.Populate(40);
        var contents = Enumerable.Range(0, 40).Select(i => b.Sim.Oracle!.ContentOf(b.FrameOf(i))).ToArray();
        Exec ex = b.On(3, b.Migrator);
        int[] old = b.Isolate(ex, 40);
        Assert.All(old, f => Assert.Equal(0, b.Sim.Memory.NodeOf(f)));
        TestKit.RunToEnd(b.MigrateTo(ex, (int[])old.Clone(), 1));
        Assert.Equal(40, b.Sim.VmStat[VmEvent.pgmigrate_success]);
        Assert.Equal(0, b.Sim.VmStat[VmEvent.pgmigrate_fail]);
        for (int i = 0; i < 40; i++)
        {
            uint pte = b.Mm.PageTable.Get(b.Vma.VpnOf(i));
            int f = Pte.Frame(pte);
            Assert.True(Pte.IsPresent(pte) && Pte.IsWrite(pte) && Pte.IsDirty(pte), $"page {i}: PTE {pte:x}");
            Assert.Equal(1, b.Sim.Memory.NodeOf(f));
            Assert.Equal(f, b.Vma.File!.FindPage(i));
            Assert.Equal(1, b.Sim.Memory.Pages[f].MapCount);
            Assert.True((b.Sim.Memory.Pages[f].Flags & PageFlags.Lru) != 0);
            Assert.Equal(contents[i], b.Sim.Oracle!.ContentOf(f));
            Assert.True((b.Sim.Memory.Pages[old[i]].Flags & PageFlags.Free) != 0, "old frame freed");
        }
        Assert.Equal(0, b.Sim.Memory.Zones[0].NrIsolatedFile);
    }

    [Fact]
    public void AnAccessToAPageUnderMigrationWaitsOnItsMigrationEntryAndResumesOnTheNewPage()
    {
        var b = new Bounce("vanilla");
        b.Populate(1);
        Exec ex = b.On(3, b.Migrator);
        int[] list = b.Isolate(ex, 1);
        using IEnumerator<Yield> migration = new ProcessRunner(b.MigrateTo(ex, list, 1));
        Assert.True(TestKit.Step(migration)); // unmapped: the migration entry stands
        long vpn = b.Vma.VpnOf(0);
        uint entry = b.Mm.PageTable.Get(vpn);
        Assert.True(Pte.IsMigration(entry) && !Pte.IsPresent(entry));
        Assert.Equal(list[0], Pte.Frame(entry));
        // pmbench-1 on CPU 4: its cached entry was flushed, so the access faults and waits.
        SimTask reader = b.Sim.UserTasks[1];
        Exec rex = b.On(4, reader);
        Assert.Equal(Hardware.Mmu.Access.Fault, b.Sim.Mmu.Touch(rex, b.Mm, vpn, write: false));
        b.Sim.Fault.HandleMmFault(rex, reader, b.Vma, 0, write: false, out IEnumerable<Yield>? wait);
        Assert.NotNull(wait);
        Assert.Equal(Yield.Sleep, wait!.First()); // migration_entry_wait: no new page is faulted in
        Assert.Equal(list[0], b.Vma.File!.FindPage(0));
        reader.State = TaskState.Sleeping;
        while (TestKit.Step(migration))
        {
        }
        Assert.Equal(TaskState.Runnable, reader.State); // woken by the unlock
        Assert.NotEqual(Hardware.Mmu.Access.Fault, b.Sim.Mmu.Touch(rex, b.Mm, vpn, write: false));
        Assert.Equal(1, b.Sim.Memory.NodeOf(b.FrameOf(0)));
    }

    /// <summary>Steps a migration and checks, after each step, that no TLB entry of the mm still maps a frame the step freed.</summary>
    private static int StaleEntriesToFreedFrames(string policy)
    {
        var b = new Bounce(policy);
        b.Populate(64);
        Exec ex = b.On(3, b.Migrator);
        int[] old = b.Isolate(ex, 64);
        int stale = 0;
        using var migration = new ProcessRunner(b.MigrateTo(ex, (int[])old.Clone(), 1));
        while (migration.MoveNext())
        {
            for (int i = 0; i < 64; i++)
            {
                if ((b.Sim.Memory.Pages[old[i]].Flags & PageFlags.Free) == 0)
                {
                    continue;
                }
                foreach (int c in new[] { 0, 4 })
                {
                    Hardware.Tlb tlb = b.Sim.Cpus[c].Tlb;
                    int slot = tlb.Lookup(b.Mm.Id, b.Vma.VpnOf(i));
                    if (slot >= 0 && tlb.FrameAt(slot) == old[i])
                    {
                        stale++;
                    }
                }
            }
        }
        return stale;
    }

    [Theory]
    [InlineData("vanilla")]
    [InlineData("linux-4.3")]
    [InlineData("linux-6.4")]
    public void OldFramesAreFreedOnlyAfterTheirFlush(string policy) => Assert.Equal(0, StaleEntriesToFreedFrames(policy));

    [Fact]
    public void RfcPatch4FreesOldFramesBeforeItsFlushAndItsFlushMissesTheUserMapping() =>
        Assert.True(StaleEntriesToFreedFrames("rfc-pfn32") > 0);

    [Theory]
    [InlineData("vanilla", 1124)] // one flush_tlb_page per page
    [InlineData("linux-4.13", 1124)] // migration is not batched before 6.4
    [InlineData("linux-6.4", 3)] // batches of 512, 512 and 100 pages: one flush each
    public void FlushesPerMigration(string policy, long flushes)
    {
        var b = new Bounce(policy, scaleDivisor: 4);
        b.Populate(1124);
        Exec ex = b.On(3, b.Migrator);
        TestKit.RunToEnd(b.MigrateTo(ex, b.Isolate(ex, 1124), 1));
        Assert.Equal(1124, b.Sim.VmStat[VmEvent.pgmigrate_success]);
        Assert.Equal(flushes, b.Sim.VmStat[VmEvent.nr_tlb_remote_flush]);
        Assert.Equal(2 * flushes, b.Sim.X86.IpisByCause[(int)FlushCause.Migration]); // CPUs 0 and 4 each time
    }

    [Fact]
    public void RfcPatch4FlushesWhenItsPfnListFillsAndAtTheEndOfMigratePages()
    {
        var b = new Bounce("rfc-pfn32", scaleDivisor: 4);
        b.Populate(1124);
        Exec ex = b.On(3, b.Migrator);
        TestKit.RunToEnd(b.MigrateTo(ex, b.Isolate(ex, 1124), 1));
        // 35 full lists of 32 PFNs, then the last 4 at `out:`; through smp_call_function_many.
        Assert.Equal(36, b.Sim.Cpus[4].CallFunctionIrqs);
        Assert.Equal(0, b.Sim.VmStat[VmEvent.nr_tlb_remote_flush]);
    }

    /// <summary>numa-migrate on small-2node, not run: process 0's threads on CPUs 0 and 1; init-0 on CPU 7 (node 1) first-touches its memory.</summary>
    private static (Sim Sim, MmStruct Mm, Vma Vma) NumaSetup(string policy, bool pteAccessibleCheck = true)
    {
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "numa-migrate", policy: policy,
            policyParams: new Policies.PolicyParams { PteAccessibleCheck = pteAccessibleCheck }));
        MmStruct mm = sim.Mms[0];
        Vma vma = mm.Vmas[0];
        SimTask init = sim.UserTasks.First(t => t.Mm == mm && t.Comm.StartsWith("init", StringComparison.Ordinal));
        Exec iex = TestKit.ExecOn(sim, init.HomeCpu.Id, 0, init);
        for (long i = 0; i < 8; i++)
        {
            sim.Fault.HandleMmFault(iex, init, vma, i, write: true, out var wait);
            Assert.Null(wait);
        }
        sim.Swap.LruAddDrain(iex);
        foreach (int c in new[] { 0, 1 })
        {
            sim.Cpus[c].ActiveMm = mm.Id;
            sim.Cpus[c].Current = sim.UserTasks.First(t => t.HomeCpu.Id == c);
            mm.CpuMask.Set(c);
        }
        return (sim, mm, vma);
    }

    [Theory]
    [InlineData("linux-4.13", true, 1)] // do_numa_page makes the PTE present first: the unmap must flush
    [InlineData("linux-6.4", true, 0)] // migrated while PROT_NONE: not pte_accessible, no flush
    [InlineData("linux-6.4", false, 1)] // without 4d4b6d66db63 the batch flushes it anyway
    public void NumaHintingFaultMigratesTheMisplacedPageToTheFaultingNode(string policy, bool check, long flushes)
    {
        var (sim, mm, vma) = NumaSetup(policy, check);
        Assert.Equal(1, sim.Memory.NodeOf(Pte.Frame(mm.PageTable.Get(vma.Start))));
        Exec ex = TestKit.ExecOn(sim, 0);
        long changed = sim.Mprotect.ChangeProtNuma(ex, vma, vma.Start, vma.Start + 8);
        Assert.Equal(8, changed);
        Assert.Equal(8, sim.VmStat[VmEvent.numa_pte_updates]);
        Assert.True(Pte.IsProtNone(mm.PageTable.Get(vma.Start)) && Pte.IsMapped(mm.PageTable.Get(vma.Start)));
        long flushesBefore = sim.VmStat[VmEvent.nr_tlb_remote_flush];
        Assert.Equal(Hardware.Mmu.Access.Fault, sim.Mmu.Touch(ex, mm, vma.Start, write: false));
        sim.Fault.HandleMmFault(ex, ex.Task, vma, 0, write: false, out IEnumerable<Yield>? migration);
        TestKit.RunToEnd(migration);
        Assert.Equal(1, sim.VmStat[VmEvent.numa_hint_faults]);
        Assert.Equal(1, sim.VmStat[VmEvent.numa_pages_migrated]);
        uint pte = mm.PageTable.Get(vma.Start);
        Assert.True(Pte.IsPresent(pte) && !Pte.IsProtNone(pte));
        Assert.Equal(0, sim.Memory.NodeOf(Pte.Frame(pte)));
        Assert.Equal(0, sim.Memory.PteWriter[Pte.Frame(pte)]); // remove_migration_pte on CPU 0 wrote the new PTE
        Assert.NotEqual(Hardware.Mmu.Access.Fault, sim.Mmu.Touch(ex, mm, vma.Start, write: false));
        Assert.Equal(flushes, sim.VmStat[VmEvent.nr_tlb_remote_flush] - flushesBefore);
        Assert.Equal(flushes, sim.X86.IpisByCause[(int)FlushCause.Migration]);
    }

    [Fact]
    public void TaskNumaWorkSkipsReadOnlyFileMappings()
    {
        // 4591ce4f2d22: a file mapping that is readable but not writable is not scanned, so its
        // present PTEs stay as they are; made writable, the same mapping's eight are marked.
        var (sim, mm, vma) = NumaSetup("linux-6.4");
        SimTask task = sim.UserTasks.First(t => t.Mm == mm);
        vma.Writable = false;
        sim.NumaBalancing.TaskNumaWork(TestKit.ExecOn(sim, 0, 0, task), task); // arms the scan delay
        sim.NumaBalancing.TaskNumaWork(TestKit.ExecOn(sim, 0, NumaBalancing.ScanDelayNs, task), task);
        Assert.Equal(0, sim.VmStat[VmEvent.numa_pte_updates]);
        Assert.False(Pte.IsProtNone(mm.PageTable.Get(vma.Start)));
        vma.Writable = true;
        sim.NumaBalancing.TaskNumaWork(TestKit.ExecOn(sim, 0, NumaBalancing.ScanDelayNs + NumaBalancing.ScanPeriodNs, task), task);
        Assert.Equal(8, sim.VmStat[VmEvent.numa_pte_updates]);
        Assert.True(Pte.IsProtNone(mm.PageTable.Get(vma.Start)));
    }

    [Fact]
    public void NumaHintingFaultOnALocalPageOnlyRestoresThePte()
    {
        var (sim, mm, vma) = NumaSetup("linux-6.4");
        Exec ex = TestKit.ExecOn(sim, 7, 0, sim.UserTasks.First(t => t.Comm == "init-0")); // node 1, where the page is
        sim.Mprotect.ChangeProtNuma(ex, vma, vma.Start, vma.Start + 1);
        sim.Fault.HandleMmFault(ex, ex.Task, vma, 0, write: false, out IEnumerable<Yield>? migration);
        Assert.Null(migration);
        Assert.Equal(1, sim.VmStat[VmEvent.numa_hint_faults_local]);
        Assert.Equal(0, sim.VmStat[VmEvent.pgmigrate_success]);
        Assert.True(Pte.IsPresent(mm.PageTable.Get(vma.Start)));
    }

    private static RunConfig Small(string workload, string policy, ulong seed = 1, int nodes = 2, int cpus = 4, long mem = 256L << 20, bool? oracle = null) =>
        RunConfig.Create(machine: "tiny", nodes: nodes, cpusPerNode: cpus, memoryBytes: mem, workload: workload, policy: policy, seed: seed, oracle: oracle);

    [Fact]
    public void MigrateBounceLinux64SendsFarFewerIpisAndMigratesFasterThanLinux43()
    {
        RunResult old = Runner.Run(Small("migrate-bounce", "linux-4.3", oracle: false));
        RunResult batched = Runner.Run(Small("migrate-bounce", "linux-6.4", oracle: false));
        Assert.True(old.PagesMigrated > 1000);
        Assert.True(batched.TlbIpisByCause["migration"] * 10 < old.TlbIpisByCause["migration"], $"{batched.TlbIpisByCause["migration"]} vs {old.TlbIpisByCause["migration"]}");
        Assert.True(batched.PagesMigratedPerS > 1.5 * old.PagesMigratedPerS, $"{batched.PagesMigratedPerS} vs {old.PagesMigratedPerS}");
        Assert.Equal(old.PagesMigrated, old.Vmstat["pgmigrate_success"]);
    }

    [Fact]
    public void NumaMigrateMovesTheMemoryHomeAndCountsIpisByCause()
    {
        RunResult r = Runner.Run(Small("numa-migrate", "linux-4.13", oracle: false));
        Assert.True(r.Vmstat["numa_pte_updates"] > 0 && r.Vmstat["numa_hint_faults"] > 0);
        Assert.True(r.Vmstat["numa_pages_migrated"] > 0);
        Assert.True(r.TlbIpisByCause["migration"] > 0);
        Assert.True(r.TlbIpisByCause["numa_pte_updates"] > 0);
        RunResult six = Runner.Run(Small("numa-migrate", "linux-6.4", oracle: false));
        Assert.Equal(r.Vmstat["numa_pages_migrated"], six.Vmstat["numa_pages_migrated"]);
        Assert.Equal(0, six.TlbIpisByCause["migration"]);
    }

    [Fact]
    public void RfcPatch4AsPostedLosesWritesOnMigrateBounceAndTheReplayShowsTheMigrationSteps()
    {
        RunConfig cfg = Small("migrate-bounce", "rfc-pfn32") with { StopOnViolation = true, StopOnKind = "lost_write" };
        var sim = new Sim(cfg);
        sim.Run();
        Safety.Violation v = sim.Oracle!.StoppedBy ?? throw new InvalidOperationException("no lost write");
        var history = sim.Oracle.Log.Relevant(v.Frame, 20).ToList();
        int entry = history.FindLastIndex(e => e.Contains("replaced by a migration entry", StringComparison.Ordinal) && e.Contains("flush deferred", StringComparison.Ordinal));
        int copy = history.FindLastIndex(e => e.Contains("copied to frame", StringComparison.Ordinal));
        int store = history.FindLastIndex(e => e.Contains("VIOLATION lost_write", StringComparison.Ordinal));
        Assert.True(entry >= 0 && entry < copy && copy < store, string.Join("\n", history));
    }

    [Fact]
    public void MigratePagesTracepointSumsToPgmigrateSuccess()
    {
        string path = Path.Combine(Path.GetTempPath(), $"shootdown-migrate-{Environment.ProcessId}.txt");
        try
        {
            RunResult r = Runner.Run(Small("migrate-bounce", "linux-6.4", oracle: false), outputs: new RunOutputs { FtracePath = path, Filter = new TraceFilter { Patterns = ["migrate:*"] } });
            var lines = File.ReadAllLines(path).Where(l => l.Contains(" mm_migrate_pages: ", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(lines);
            long sum = lines.Sum(l => long.Parse(l.Split("nr_succeeded=")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(r.PagesMigrated, sum);
            Assert.All(lines, l => Assert.Contains("mode=MIGRATE_SYNC reason=syscall_or_cpuset", l, StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Mutation: 6.4's correct flush, but where RFC 4/4 put it — at the end of migrate_pages, after the copies and frees.</summary>
    private sealed class Linux64FlushAtEnd(Policies.PolicyParams p) : Policies.Linux64(p)
    {
        public override Policies.MigrateFlushSite MigrateFlush => Policies.MigrateFlushSite.EndOfMigratePages;
    }

    [Fact]
    public void MutationFlushingAfterTheMoveIsCaughtEvenWithACorrectFlush()
    {
        RunConfig cfg = Small("migrate-bounce", "linux-6.4") with { StopOnViolation = true };
        var sim = new Sim(cfg, new Linux64FlushAtEnd(cfg.Policy));
        sim.Run();
        Assert.NotNull(sim.Oracle!.StoppedBy);
    }

    [Theory]
    [InlineData("migrate-bounce", "vanilla")]
    [InlineData("migrate-bounce", "linux-4.3")]
    [InlineData("migrate-bounce", "linux-4.13")]
    [InlineData("migrate-bounce", "linux-6.4")]
    [InlineData("numa-migrate", "vanilla")]
    [InlineData("numa-migrate", "linux-4.3")]
    [InlineData("numa-migrate", "linux-4.13")]
    [InlineData("numa-migrate", "linux-6.4")]
    public void PropertyMergedPoliciesNeverViolateOnTheMigrationWorkloads(string workload, string policy)
    {
        Gen.Select(Gen.Int[2, 3], Gen.Int[2, 4], Gen.ULong[1, 1_000_000])
            .Sample((nodes, cpus, seed) =>
            {
                RunResult r = Runner.Run(Small(workload, policy, seed, nodes, cpus, mem: nodes * (16L << 20)));
                Assert.True(r.PagesMigrated > 0, $"{policy} on {workload}: nothing migrated");
                Assert.True(r.Safety!.Violations == 0, $"{policy} violated {workload} on {nodes}x{cpus} CPUs, seed {seed}: {r.Safety.First?.Detail}");
            }, iter: 2, threads: 1);
    }
}
