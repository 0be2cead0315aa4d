using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Reports;
using Shootdown.Observe;

namespace Shootdown.Tests;

/// <summary>mm/readahead.c's windows, read(2)'s path and the lru-file-readonce workload.</summary>
public class ReadaheadTests
{
    [Theory]
    [InlineData(1, 32, 4)] // a one-page read: 4 pages (newsize <= max/32: x4)
    [InlineData(2, 32, 4)] // 2 > max/32 = 1 but <= max/4: x2
    [InlineData(3, 32, 8)] // rounded up to 4, then x2
    [InlineData(16, 32, 32)] // above max/4: max
    [InlineData(1, 128, 4)]
    [InlineData(8, 128, 16)] // <= max/4: x2
    public void InitialWindowFollowsGetInitRaSize(int req, int max, int expected) =>
        Assert.Equal(expected, Readahead.InitRaSize(req, max));

    [Fact]
    public void ASequentialReaderRampsItsWindowTo32PagesAndReadsOneWindowAhead()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        AddressSpace file = sim.CreateFile("seq", 1000);
        var ra = new FileRaState();
        // The first read: start of file, a window of 4 with its mark on page 1.
        Assert.Equal((0L, 4, 3), sim.Readahead.Ondemand(ra, file, 0, hitMarker: false));
        // Reading the marked page 1 pushes the window forward and doubles it: [4, 12), marked at 4.
        Assert.Equal((4L, 8, 8), sim.Readahead.Ondemand(ra, file, 1, hitMarker: true));
        Assert.Equal((12L, 16, 16), sim.Readahead.Ondemand(ra, file, 4, hitMarker: true));
        Assert.Equal((28L, 32, 32), sim.Readahead.Ondemand(ra, file, 12, hitMarker: true));
        Assert.Equal((60L, 32, 32), sim.Readahead.Ondemand(ra, file, 28, hitMarker: true)); // capped at ra_pages
        // A miss far from the window with no history nearby: a lone read of one page.
        ra.PrevIndex = 100;
        Assert.Equal((500L, 1, 0), sim.Readahead.Ondemand(ra, file, 500, hitMarker: false));
        // A sequential miss (the previous page was read) restarts at the initial size.
        ra.PrevIndex = 499;
        Assert.Equal((500L, 4, 3), sim.Readahead.Ondemand(ra, file, 500, hitMarker: false));
        // A backward read is random, not sequential (the kernel's unsigned offset - prev <= 1).
        ra.PrevIndex = 700;
        Assert.Equal((500L, 1, 0), sim.Readahead.Ondemand(ra, file, 500, hitMarker: false));
    }

    [Fact]
    public void AMarkWithoutMatchingStateResumesFromTheNextHole()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        AddressSpace file = sim.CreateFile("hole", 1000);
        for (long i = 200; i < 210; i++)
        {
            file.PageCache.Set(i, 1); // pages 200..209 cached
        }
        var ra = new FileRaState { Start = 0, Size = 4, AsyncSize = 3 };
        // page_cache_next_hole from 201 is 210: the old lookahead was 10 pages, plus the read; x2.
        Assert.Equal((210L, 22, 22), sim.Readahead.Ondemand(ra, file, 200, hitMarker: true));
    }

    [Fact]
    public void SubmitAndFinishReadTheMissingPagesOfAWindowAndMarkItsLookahead()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        AddressSpace file = sim.CreateFile("win", 100);
        SimTask task = sim.UserTasks[0];
        Exec ex = TestKit.ExecOn(sim, 0, task: task);
        Assert.Null(sim.Readahead.Submit(ex, task, file, 4, 8, 8, out RaRequest req));
        sim.Readahead.Finish(ex, task, file, req, req.Allocated);
        Assert.Equal(8, file.PageCache.Count);
        for (long i = 4; i < 12; i++)
        {
            int f = file.FindPage(i);
            Assert.True(f >= 0, $"page {i} not read in");
            PageFlags want = i == 4 ? PageFlags.Uptodate | PageFlags.Readahead : PageFlags.Uptodate;
            Assert.Equal(want, sim.Memory.Pages[f].Flags & (PageFlags.Uptodate | PageFlags.Readahead));
        }
        // Already cached: nothing is allocated, no mark is set.
        Assert.Null(sim.Readahead.Submit(ex, task, file, 4, 8, 8, out RaRequest again));
        Assert.Equal(0, again.Allocated);
        // The window is clipped at the end of the file; a mark past the end is dropped.
        Assert.Null(sim.Readahead.Submit(ex, task, file, 96, 32, 2, out RaRequest tail));
        sim.Readahead.Finish(ex, task, file, tail, tail.Allocated);
        Assert.Equal(12, file.PageCache.Count);
        Assert.Equal(100, tail.End);
        Assert.Equal(-1, tail.Marker);
    }

    [Fact]
    public void ReadOncePagesAreReclaimedAtTheirFirstScanWithoutAFlush()
    {
        RunResult r = Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "lru-file-readonce", policy: "vanilla"));
        // No shootdown from reclaim: nothing it frees is mapped. (A dd that moved leaves its old
        // CPU holding its mm lazily, so its exit's flush_tlb_mm may send one: not reclaim's.)
        Assert.Equal(0, r.TlbIpisByCause["reclaim"]);
        Assert.True(r.TlbIpis <= r.Tasks.Count, $"{r.TlbIpis} IPIs");
        Assert.True(r.PagesReclaimed > r.PagesRead / 2, $"{r.PagesReclaimed} of {r.PagesRead} reclaimed");
        // Read once: PG_referenced, never mapped, so page_check_references reclaims each at its
        // first scan; nothing is activated or rotated.
        long scanned = r.Vmstat["pgscan_direct"] + r.Vmstat["pgscan_kswapd"];
        long stolen = r.Vmstat["pgsteal_direct"] + r.Vmstat["pgsteal_kswapd"];
        Assert.Equal(scanned, stolen);
        Assert.Equal(0, r.Vmstat["pgactivate"]);
        Assert.Equal(0, r.Vmstat["pgfault"]);
        // Every page read is freed by reclaim or by the closing rm. A page read ahead that reclaim
        // takes before dd reads it (a dd waiting behind kswapd on its CPU) is read in again and
        // counts twice among the freed: a few dozen of the 655,360 here (28 in session 41), never
        // more than a thousandth.
        long freed = r.Truncate!.Pages + r.PagesReclaimed;
        Assert.InRange(freed - r.PagesRead, 0, r.PagesRead / 1000);
        Assert.True(r.UserS < r.SystemS / 1000, $"user {r.UserS} s: dd's user loop is not charged, only its hot pages' TLB refills");
    }

    [Fact]
    public void PoliciesAgreeOnAWorkloadThatMapsNothing()
    {
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "lru-file-readonce", policy: "vanilla");
        string vanilla = TestKit.WithoutWallTime(Runner.Run(cfg).ToJson());
        string rfc = TestKit.WithoutWallTime(Runner.Run(cfg with { PolicyName = "rfc-pfn32" }).ToJson());
        Assert.Equal(vanilla.Replace("\"vanilla\"", "\"rfc-pfn32\"", StringComparison.Ordinal), rfc.Replace("\"vanilla\"", "\"rfc-pfn32\"", StringComparison.Ordinal));
    }

    [Fact]
    public void TheScriptSleepsASecondScaledWithTheRunBeforeItsRm()
    {
        Sim? sim = null;
        RunResult r = Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "lru-file-readonce", policy: "vanilla"),
            outputs: new RunOutputs { OnSim = s => sim = s });
        long lastReader = sim!.UserTasks.Where(t => t.Comm.StartsWith("dd-", StringComparison.Ordinal)).Max(t => t.ExitedAt);
        Assert.True(lastReader > 0);
        long sleep = 1_000_000_000 / 16;
        Assert.True(r.Truncate!.StartS * 1e9 >= lastReader + sleep, $"rm at {r.Truncate.StartS} s, last reader out at {lastReader / 1e9} s");
        Assert.True(r.Truncate.StartS * 1e9 < lastReader + sleep + 1_000_000, "rm did not start when the sleep ended");
    }

    [Fact]
    public void ThroughputSumsEachReadersKibPerSecondOverItsOwnRun()
    {
        Sim? sim = null;
        RunResult r = Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "lru-file-readonce", policy: "vanilla"),
            outputs: new RunOutputs { OnSim = s => sim = s });
        SimTask[] dd = sim!.UserTasks.Where(t => t.Comm.StartsWith("dd-", StringComparison.Ordinal)).ToArray();
        Assert.Equal(sim.Cpus.Length, dd.Length);
        long pagesEach = r.PagesRead / dd.Length;
        // Each dd starts within 20 us of time 0 and stops reading at or before its exit.
        double atLeast = dd.Sum(t => pagesEach * 4.0 / (t.ExitedAt / 1e9));
        double atMost = dd.Sum(t => pagesEach * 4.0 / ((t.ExitedAt - 20_000 - 5_000_000) / 1e9));
        Assert.InRange(r.ThroughputKbps, atLeast, atMost);
        // A workload without readers reports none.
        Assert.Equal(0, Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 64, workload: "migrate-bounce", policy: "linux-4.3")).ThroughputKbps);
    }
}

/// <summary>filemap_fault's read-around of Linux 4.0 for a read fault on a mapped file.</summary>
public class FilemapFaultTests
{
    private static (Sim Sim, Vma Vma, AddressSpace File, SimTask Task) Reader()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        MmStruct mm = sim.CreateMm();
        AddressSpace file = sim.CreateFile("mapped", 1000);
        var vma = new Vma(mm, 0x1000, 1000, file, 0, writable: false, shared: true) { FaultAroundPages = 16, Ra = new FileRaState() };
        mm.Vmas.Add(vma);
        file.IMmap.Add(vma);
        return (sim, vma, file, sim.UserTasks[0]);
    }

    private static void Fault(Sim sim, SimTask task, Vma vma, long index)
    {
        Exec ex = TestKit.ExecOn(sim, 0, task: task);
        Assert.Equal(VmFault.Done, sim.Fault.HandleMmFault(ex, task, vma, index, write: false, out IEnumerable<Yield>? wait));
        TestKit.RunToEnd(wait);
    }

    private static bool Mapped(Vma vma, long index) => Pte.IsPresent(vma.Mm.PageTable.Get(vma.VpnOf(index)));

    private static bool Marked(Sim sim, AddressSpace file, long index) =>
        (sim.Memory.Pages[file.FindPage(index)].Flags & PageFlags.Readahead) != 0;

    [Fact]
    public void AMissReadsThirtyTwoPagesAroundAndMapsOnlyTheFaultingPage()
    {
        var (sim, vma, file, task) = Reader();
        Fault(sim, task, vma, 0);
        // do_sync_mmap_readahead: ra_pages (32) from max(0, 0 - 16), lookahead ra_pages / 4 = 8.
        Assert.Equal(1, sim.VmStat[VmEvent.pgmajfault]);
        Assert.Equal(32, file.PageCache.Count);
        Assert.True(Marked(sim, file, 24));
        Assert.True(Mapped(vma, 0));
        Assert.False(Mapped(vma, 1)); // fault-around ran before the read: nothing was cached then
        // The next page faults again; fault-around maps the rest of the window from the cache.
        Fault(sim, task, vma, 1);
        Assert.All(Enumerable.Range(0, 16), i => Assert.True(Mapped(vma, i)));
        Assert.Equal(1, sim.VmStat[VmEvent.pgmajfault]);
        Assert.Equal(32, file.PageCache.Count);
        // A miss in the middle of a file reads from 16 pages before it.
        Fault(sim, task, vma, 500);
        Assert.Equal(2, sim.VmStat[VmEvent.pgmajfault]);
        Assert.All(Enumerable.Range(484, 32), i => Assert.True(file.FindPage(i) >= 0, $"page {i}"));
        Assert.True(Marked(sim, file, 508));
    }

    [Fact]
    public void AWindowReachesTheLruAPagevecAtATimeWithASyncPointAfterEachDrain()
    {
        // read_pages holds no lock between pages: another CPU's pagevec may drain between two of
        // this CPU's, so the fault ends its step after each drain that leaves pages to add.
        var (sim, vma, file, task) = Reader();
        Exec ex = TestKit.ExecOn(sim, 0, task: task);
        sim.Fault.HandleMmFault(ex, task, vma, 0, write: false, out IEnumerable<Yield>? wait);
        Assert.NotNull(wait);
        using IEnumerator<Yield> steps = wait.GetEnumerator();
        Assert.True(steps.MoveNext());
        Assert.Equal(Yield.Sync, steps.Current);
        Assert.Equal(14, file.PageCache.Count);
        Assert.Equal(0, sim.Cpus[0].PagevecCount);
        Assert.True(steps.MoveNext());
        Assert.Equal(Yield.Sync, steps.Current);
        Assert.Equal(28, file.PageCache.Count);
        Assert.False(steps.MoveNext());
        Assert.Equal(32, file.PageCache.Count);
        Assert.Equal(4, sim.Cpus[0].PagevecCount); // the last 4 wait for the next drain
        Assert.True(Mapped(vma, 0));
        Assert.True(Marked(sim, file, 24));
    }

    [Fact]
    public void TheMarkedPageIsNotMappedAroundAndItsFaultReadsTheNextWindow()
    {
        var (sim, vma, file, task) = Reader();
        Fault(sim, task, vma, 0);
        Fault(sim, task, vma, 1);
        // Window 16..31 is cached; filemap_map_pages skips the PG_readahead page 24.
        Fault(sim, task, vma, 16);
        Assert.All(Enumerable.Range(16, 16), i => Assert.Equal(i != 24, Mapped(vma, i)));
        Assert.Equal(32, file.PageCache.Count);
        // The access to 24 faults: do_async_mmap_readahead reads [32, 64), marked at 32.
        Fault(sim, task, vma, 24);
        Assert.True(Mapped(vma, 24));
        Assert.False(Marked(sim, file, 24));
        Assert.Equal(64, file.PageCache.Count);
        Assert.True(Marked(sim, file, 32));
        // From here the mark is on a window's first page: one fault per window, a read every other.
        Fault(sim, task, vma, 32);
        Assert.All(Enumerable.Range(32, 16), i => Assert.True(Mapped(vma, i)));
        Assert.Equal(96, file.PageCache.Count);
        Assert.True(Marked(sim, file, 64));
        Fault(sim, task, vma, 48);
        Assert.Equal(96, file.PageCache.Count);
        Assert.Equal(5 + 1, sim.VmStat[VmEvent.pgfault]);
        Assert.Equal(1, sim.VmStat[VmEvent.pgmajfault]);
    }

    [Fact]
    public void AfterMmapLotsaMissMissesInARowAFaultReadsOnlyItsPage()
    {
        var (sim, vma, file, task) = Reader();
        vma.Ra!.MmapMiss = FileRaState.MmapLotsaMiss;
        Fault(sim, task, vma, 300);
        // The hundred-and-first miss: no read-around; page_cache_read reads the page alone.
        Assert.Equal(1, file.PageCache.Count);
        Assert.True(Mapped(vma, 300));
        Assert.Equal(FileRaState.MmapLotsaMiss + 1, vma.Ra.MmapMiss);
        // A fault that reaches filemap_fault and finds its page counts the misses down again
        // (with fault-around, only a page fault-around skipped: one marked PG_readahead).
        vma.Mm.PageTable.Set(vma.VpnOf(300), 0);
        sim.Memory.Pages[file.FindPage(300)].MapCount--;
        sim.Memory.Pages[file.FindPage(300)].Flags |= PageFlags.Readahead;
        Fault(sim, task, vma, 300);
        Assert.Equal(FileRaState.MmapLotsaMiss, vma.Ra.MmapMiss);
        Assert.True(Mapped(vma, 300));
    }
}
