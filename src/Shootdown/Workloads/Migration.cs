using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Workloads;

/// <summary>
/// A thread that reads and writes random pages of a shared file mapping, as pmbench's worker
/// threads do (uniform random page, one cache line per access), until a deadline. An access that
/// faults is handled as the kernel handles it — including waiting on a migration entry and NUMA
/// hinting faults — and retried. With <see cref="NumaBalancing"/>, task_numa_work runs on each
/// return to user space.
/// </summary>
public sealed class RandomAccessThread(int pid, string comm, MmStruct mm, Cpu cpu, Vma vma, int storePercent, Func<CostModel, long> userNsPerAccess, Func<long, bool> running)
    : SimTask(pid, comm, mm, cpu)
{
    /// <summary>Accesses per step (between two cond_resched points).</summary>
    public const int AccessesPerStep = 64;

    /// <summary>Run task_numa_work on the way back to user space (NUMA balancing on).</summary>
    public bool NumaBalancing { get; init; }

    /// <summary>The thread starts once this holds (checked every millisecond); null: at once.</summary>
    public Func<bool>? Ready { get; init; }

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        Exec ex = sim.Exec;
        MmStruct mm = Mm!;
        long pages = vma.End - vma.Start;
        while (Ready is not null && !Ready())
        {
            sim.Sched.WakeAt(this, ex.Now + 1_000_000);
            yield return Yield.Sleep;
        }
        while (running(ex.Now))
        {
            ex.What = "random access";
            if (NumaBalancing)
            {
                sim.NumaBalancing.TaskNumaWork(ex, this);
            }
            for (int k = 0; k < AccessesPerStep; k++)
            {
                long i = vma.PgOff + sim.Rng.Next(pages);
                bool write = sim.Rng.Next(100) < storePercent;
                long vpn = vma.VpnOf(i);
                while (sim.Mmu.Touch(ex, mm, vpn, write) == Mmu.Access.Fault)
                {
                    VmFault r = sim.Fault.HandleMmFault(ex, this, vma, i, write, out IEnumerable<Yield>? wait);
                    if (wait is not null)
                    {
                        yield return Process.Call(wait);
                        ex.What = "random access";
                    }
                    if (r == VmFault.Sigsegv)
                    {
                        break;
                    }
                }
                ex.User += userNsPerAccess(ex.Costs);
            }
            sim.PagesDone += AccessesPerStep;
            yield return Yield.Resched;
        }
    }
}

/// <summary>What the migration workloads share: a NUMA machine, 50% stores, memory as a MAP_SHARED file mapping.</summary>
public abstract class MigrationWorkload : Workload
{
    /// <summary>Share of stores among the accesses, in percent (the run's workload_params.store_percent).</summary>
    protected static int StorePercent(Sim sim) => sim.Config.WorkloadParams.StorePercent;

    public override bool Stores => true;

    /// <summary>The machine's nodes; at least 2, or a <see cref="ConfigException"/>.</summary>
    protected int RequireNodes(Sim sim)
    {
        int nodes = sim.Memory.NodeZones.Length;
        if (nodes < 2)
        {
            throw new ConfigException($"{Name} needs at least 2 NUMA nodes; the machine has {nodes}");
        }
        return nodes;
    }

    /// <summary>A file of <paramref name="pages"/> pages mapped MAP_SHARED and writable at the mmap base of <paramref name="mm"/>.</summary>
    protected static Vma MapShared(Sim sim, MmStruct mm, string name, long pages)
    {
        AddressSpace file = sim.CreateFile(name, pages);
        var vma = new Vma(mm, LruFileMmapRead.MapBase, pages, file, 0, writable: true, shared: true);
        mm.Vmas.Add(vma);
        file.IMmap.Add(vma);
        return vma;
    }
}

/// <summary>
/// migrate-bounce: the benchmark of 7e12beb8ca2a ("migrate_pages: batch flushing TLB"). Threads of
/// one process (one per 12 CPUs, spread over the nodes) read and write random pages of a working
/// set (50% stores; pmbench-like) while a `migratepages` process moves the set's pages from node 0
/// to node 1 and back with migrate_pages(2), again and again, for <see cref="DurationNs"/>. The
/// working set is a MAP_SHARED file mapping (the simulator's rmap walks files; shmem pages migrate
/// through the same migrate_pages path as anonymous ones), 1/128 of memory.
/// </summary>
public sealed class MigrateBounce : MigrationWorkload
{
    public const long DurationNs = 500_000_000;

    public override string Name => "migrate-bounce";

    public override string Summary => "pmbench-like threads access random pages (50% stores) of a shared mapping while migratepages bounces it between node 0 and node 1 (7e12beb8ca2a's test)";

    public override long Setup(Sim sim)
    {
        int nodes = RequireNodes(sim);
        int nrCpus = sim.Cpus.Length;
        int threads = Math.Max(2, nrCpus / 12);
        long pages = Math.Max(512, sim.Memory.NrFrames / 128L);
        MmStruct mm = sim.CreateMm();
        Vma vma = MapShared(sim, mm, "pmbench", pages);
        bool Running(long now) => now < DurationNs;
        for (int t = 0; t < threads; t++)
        {
            Cpu cpu = sim.Cpus[(int)((long)t * nrCpus / threads)];
            sim.AddUserTask(new RandomAccessThread(sim.NextPid(), $"pmbench-{t}", mm, cpu, vma, StorePercent(sim), static c => c.UserStoreNs, Running), startAt: sim.Rng.Next(20_000));
        }
        int cpusPerNode = nrCpus / nodes;
        MmStruct own = sim.CreateMm();
        sim.AddUserTask(new MigratePagesTask(sim.NextPid(), own, sim.Cpus[cpusPerNode - 1], vma, Running), startAt: 1_000_000);
        return threads * DurationNs / Math.Max(1, sim.Costs.UserStoreNs + sim.Costs.PageWalkNs);
    }

    /// <summary>
    /// `while :; do migratepages PID 0 1; migratepages PID 1 0; done`: each call is migrate_pages(2)
    /// → do_migrate_pages → migrate_to_node: lru_add_drain_all, queue_pages_range isolates the
    /// process's pages on the source node, migrate_pages(MIGRATE_SYNC, MR_SYSCALL) moves them.
    /// </summary>
    private sealed class MigratePagesTask(int pid, MmStruct mm, Cpu cpu, Vma target, Func<long, bool> running) : SimTask(pid, "migratepages", mm, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            Exec ex = sim.Exec;
            MmStruct tmm = target.Mm;
            var list = new int[target.End - target.Start];
            int from = 0;
            while (running(ex.Now))
            {
                int to = 1 - from;
                ex.What = "migrate_pages";
                ex.Sys += sim.Costs.FaultEntryNs; // syscall entry, mmap_sem, nodemask checks
                int n = 0;
                for (long vpn = target.Start; vpn < target.End; vpn++)
                {
                    uint pte = tmm.PageTable.Get(vpn);
                    ex.Sys += sim.Costs.PageWalkNs;
                    if (Pte.IsMapped(pte) && sim.Memory.NodeOf(Pte.Frame(pte)) == from && sim.Migrate.IsolateLruPage(ex, Pte.Frame(pte)))
                    {
                        list[n++] = Pte.Frame(pte);
                    }
                }
                yield return Process.Call(sim.Migrate.MigratePages(ex, this, list, n, to, MigrateMode.Sync, MigrateReason.Syscall));
                from = to;
                yield return Yield.Resched;
            }
        }
    }
}

/// <summary>
/// numa-migrate: one multi-threaded process per node, its threads on that node's CPUs, whose
/// memory was first touched by a thread on the next node (so it starts remote) and follows them
/// through NUMA balancing: task_numa_work marks the PTEs PROT_NONE every scan period, the hinting
/// faults migrate the misplaced pages to the faulting thread's node. Each thread reads or writes
/// (50% stores) a random page at a time, a whole page per access; the set of each process is
/// 1/64 of memory divided among the processes. Resembles the autonuma-benchmark tests
/// (NUMA01-style: threads whose memory is on the wrong node) that NUMA balancing changes are
/// measured with.
/// </summary>
public sealed class NumaMigrate : MigrationWorkload
{
    /// <summary>How long the threads run after their memory is populated: two scan periods after the scan delay.</summary>
    public const long RunNs = NumaBalancing.ScanDelayNs + 2 * NumaBalancing.ScanPeriodNs + 200_000_000;

    public override string Name => "numa-migrate";

    public override string Summary => "a process per node whose memory starts on the next node; its threads' NUMA hinting faults migrate it home (NUMA balancing)";

    public override long Setup(Sim sim)
    {
        int nodes = RequireNodes(sim);
        int cpusPerNode = sim.Cpus.Length / nodes;
        if (cpusPerNode < 2)
        {
            throw new ConfigException($"{Name} needs at least 2 CPUs per node; the machine has {cpusPerNode}");
        }
        int threads = Math.Max(2, cpusPerNode / 4);
        long pages = Math.Max(256, sim.Memory.NrFrames / 64L / nodes);
        long total = 0;
        for (int p = 0; p < nodes; p++)
        {
            MmStruct mm = sim.CreateMm();
            Vma vma = MapShared(sim, mm, $"numa-{p}", pages);
            var init = new Initializer(sim.NextPid(), $"init-{p}", mm, sim.Cpus[((p + 1) % nodes * cpusPerNode) + cpusPerNode - 1], vma);
            sim.AddUserTask(init, startAt: 0);
            bool Running(long now) => init.DoneAt < 0 || now < init.DoneAt + RunNs;
            for (int t = 0; t < threads; t++)
            {
                Cpu cpu = sim.Cpus[p * cpusPerNode + t];
                var worker = new RandomAccessThread(sim.NextPid(), $"numa{p}-{t}", mm, cpu, vma, StorePercent(sim), static c => c.UserReadPageNs, Running) { NumaBalancing = true, Ready = () => init.DoneAt >= 0 };
                sim.AddUserTask(worker, startAt: 0);
            }
            total += threads * RunNs / sim.Costs.UserReadPageNs;
        }
        return total;
    }

    /// <summary>Writes every page of the set once from a CPU of another node (first touch places the memory there), then exits.</summary>
    private sealed class Initializer(int pid, string comm, MmStruct mm, Cpu cpu, Vma vma) : SimTask(pid, comm, mm, cpu)
    {
        public long DoneAt { get; private set; } = -1;

        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            Exec ex = sim.Exec;
            for (long i = vma.PgOff; i < vma.PgOff + (vma.End - vma.Start); i++)
            {
                ex.What = "first touch";
                long vpn = vma.VpnOf(i);
                if (sim.Mmu.Touch(ex, Mm!, vpn, write: true) == Mmu.Access.Fault)
                {
                    sim.Fault.HandleMmFault(ex, this, vma, i, write: true, out IEnumerable<Yield>? wait);
                    if (wait is not null)
                    {
                        yield return Process.Call(wait);
                    }
                    sim.Mmu.Touch(ex, Mm!, vpn, write: true);
                }
                if ((i & 63) == 63)
                {
                    yield return Yield.Resched;
                }
            }
            DoneAt = ex.Now;
        }
    }
}
