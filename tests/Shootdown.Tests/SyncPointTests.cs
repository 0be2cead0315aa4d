using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Tests;

/// <summary>
/// Vanilla reclaim of a page another CPU caches takes two steps, split at a sync point
/// (<see cref="Yield.Sync"/>): what other CPUs do in between, and what the second step keeps of
/// the first.
/// </summary>
public class SyncPointTests
{
    private static Sim SmallSim() => new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));

    /// <summary>A task that runs one shrink_inactive_list of node 0 and ends.</summary>
    private sealed class Reclaimer(int pid, Cpu cpu) : SimTask(pid, $"r{pid}", null, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            yield return Process.Call(sim.Vmscan.ShrinkInactiveList(sim.Exec, this, 0, 32));
        }
    }

    /// <summary>A task that waits, 10 ns a step, until <paramref name="watch"/> stands at a sync point, then does <paramref name="act"/> once.</summary>
    private sealed class AtTheSyncPoint(int pid, Cpu cpu, SimTask watch, Action<Sim> act) : SimTask(pid, $"w{pid}", null, cpu)
    {
        public bool Acted { get; private set; }

        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            for (int i = 0; i < 100_000; i++)
            {
                sim.Exec.Sys += 10;
                if (watch.Body?.Current == Yield.Sync)
                {
                    act(sim);
                    Acted = true;
                    yield break;
                }
                yield return Yield.Resched;
            }
        }
    }

    /// <summary>
    /// One clean, idle page of an mm that CPU 1 caches, on node 0's inactive list; a reclaimer on
    /// CPU 0 and, on CPU 1, a task doing <paramref name="act"/> (given the mm and the page's vpn)
    /// while the reclaimer stands between its two steps. Runs both to the end.
    /// </summary>
    private static (Sim Sim, MmStruct Mm, long Vpn, int Frame) ActBetweenTheSteps(Action<Sim, MmStruct, long> act, bool dirty)
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        var (mm, vma, f) = KernelTests.MapOnePage(sim, 0, 0);
        if (dirty)
        {
            sim.Writeback.SetPageDirty(f);
        }
        mm.CpuMask.Set(1);
        sim.Cpus[1].ActiveMm = mm.Id;
        sim.Memory.LruAddHead(z, f, active: false);
        long vpn = vma.VpnOf(0);
        var reclaimer = new Reclaimer(9001, sim.Cpus[0]);
        var other = new AtTheSyncPoint(9002, sim.Cpus[1], reclaimer, s => act(s, mm, vpn));
        sim.Sched.Wake(reclaimer, 0);
        sim.Sched.Wake(other, 0);
        TestKit.DrainEvents(sim);
        Assert.True(other.Acted, "the reclaimer never stood at a sync point");
        Assert.Equal(TaskState.Exited, reclaimer.State);
        return (sim, mm, vpn, f);
    }

    [Fact]
    public void AnOwnerThatExitsBetweenTheStepsLeavesTheUnmapNothingToDo()
    {
        // exit_mmap zaps the PTE (and moves its dirty bit to the page) while the reclaimer stands
        // at the sync point: the second step finds the page unmapped, and a direct reclaimer keeps
        // the dirty page for the flusher — a step that may take no time, then cond_resched.
        var (sim, _, _, f) = ActBetweenTheSteps((s, mm, _) => s.Mmap.ExitMmap(s.Exec, mm), dirty: true);
        Page p = sim.Memory.Pages[f];
        Assert.Equal(0, p.MapCount);
        Assert.Equal(PageFlags.None, p.Flags & PageFlags.Free);
        Assert.Equal(PageFlags.Lru, p.Flags & PageFlags.Lru); // kept, back on the LRU
        Assert.Equal(0, sim.VmStat[VmEvent.nr_tlb_remote_flush]); // nothing left to shoot down
        Assert.Equal(0, sim.VmStat[VmEvent.pgsteal_direct]);
    }

    [Fact]
    public void APteReferencedBetweenTheStepsFailsTheUnmap()
    {
        // CPU 1 reads the page between the two steps, after page_referenced cleared its accessed
        // bit (in the simulation's order of execution; in simulated time the touch may fall inside
        // the first step): its TLB misses and the walk sets the bit again. 4.0's try_to_unmap_one (no TTU_IGNORE_ACCESS) clears it and
        // returns SWAP_FAIL: the page stays mapped, no IPI is sent, and it is activated.
        var (sim, mm, vpn, f) = ActBetweenTheSteps((s, m, v) =>
        {
            var ex = new Exec(s.Costs, s.Lines);
            ex.Reset(s.Cpus[1], s.UserTasks[1], s.Now, s.Now);
            Assert.Equal(Hardware.Mmu.Access.Filled, s.Mmu.Touch(ex, m, v, write: false));
        }, dirty: false);
        Page p = sim.Memory.Pages[f];
        Assert.Equal(1, p.MapCount);
        Assert.Equal(PageFlags.Active, p.Flags & PageFlags.Active);
        Assert.Equal(PageFlags.None, p.Flags & PageFlags.Referenced); // page_check_references cleared it; activate_locked does not set it
        Assert.Equal(1, sim.VmStat[VmEvent.pgactivate]);
        Assert.False(Pte.IsYoung(mm.PageTable.Get(vpn)));
        Assert.Equal(0, sim.VmStat[VmEvent.nr_tlb_remote_flush]);
        Assert.Equal(0, sim.VmStat[VmEvent.pgsteal_direct]);
    }

    [Fact]
    public void AnUntouchedPageIsUnmappedWithOneShootdown()
    {
        // The same scenario with nothing done between the steps: one IPI, the page freed.
        var (sim, _, _, f) = ActBetweenTheSteps((_, _, _) => { }, dirty: false);
        Assert.Equal(0, sim.Memory.Pages[f].MapCount);
        Assert.Equal(PageFlags.Free, sim.Memory.Pages[f].Flags & PageFlags.Free);
        Assert.Equal(1, sim.VmStat[VmEvent.nr_tlb_remote_flush]);
        Assert.Equal(1, sim.VmStat[VmEvent.pgsteal_direct]);
    }

    /// <summary>
    /// kswapd, with ZONE_DIRTY set, reclaims one dirty, idle page of an mm that CPU 1 caches
    /// (on a ramdisk, so pageout's write completes at once); <paramref name="referenced"/> sets
    /// PG_referenced first. Returns the steps' yields and the writes reclaim made.
    /// </summary>
    private static (List<Yield> Steps, long Writes, bool Freed) KswapdReclaimsADirtyPage(bool referenced)
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        var (mm, _, f) = KernelTests.MapOnePage(sim, 0, 0, syncIo: true);
        sim.Writeback.SetPageDirty(f);
        if (referenced)
        {
            sim.Memory.Pages[f].Flags |= PageFlags.Referenced;
        }
        mm.CpuMask.Set(1);
        sim.Cpus[1].ActiveMm = mm.Id;
        sim.Memory.LruAddHead(z, f, active: false);
        z.ZoneDirty = true;
        SimTask kswapd = sim.Kswapd[0];
        var ex = new Exec(sim.Costs, sim.Lines);
        ex.Reset(sim.Cpus[0], kswapd, 0, 0);
        var steps = new List<Yield>();
        using var runner = new ProcessRunner(sim.Vmscan.ShrinkInactiveList(ex, kswapd, 0, 32));
        while (runner.MoveNext())
        {
            steps.Add(runner.Current);
        }
        return (steps, sim.VmStat[VmEvent.nr_vmscan_write], (sim.Memory.Pages[f].Flags & PageFlags.Free) != 0);
    }

    [Fact]
    public void TheReferencesVerdictSurvivesTheSyncPoint()
    {
        // PG_referenced with an idle PTE is PAGEREF_RECLAIM_CLEAN: the page is unmapped in the
        // second step but not written from reclaim — the verdict of the first step decides there.
        var clean = KswapdReclaimsADirtyPage(referenced: true);
        Assert.Contains(Yield.Sync, clean.Steps);
        Assert.Equal(0, clean.Writes);
        Assert.False(clean.Freed);
        // Without PG_referenced (PAGEREF_RECLAIM) kswapd writes it and frees it in the same pass.
        var reclaim = KswapdReclaimsADirtyPage(referenced: false);
        Assert.Contains(Yield.Sync, reclaim.Steps);
        Assert.Equal(1, reclaim.Writes);
        Assert.True(reclaim.Freed);
    }
}
