using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Workloads;

/// <summary>
/// vm-scalability case-lru-file-readonce: one <c>dd bs=4k of=/dev/null</c> per CPU, each reading
/// its own sparse file of 10 x RAM / nr_cpu bytes (the same ROTATE_BYTES / nr_task as
/// case-lru-file-mmap-read) with read(2) — the page cache filled by readahead, nothing mapped.
/// A page read once stays PG_referenced on the inactive list, so reclaim frees it at its first
/// scan, without an unmap or a TLB flush: the flush policies have nothing to do here. After the
/// readers' <c>wait</c> the script sleeps a second (scaled with the run), then removes the files
/// (<see cref="RemoveFiles"/>). This is the test of [Yuanhan Liu 2014]'s 4-socket profile.
/// </summary>
public sealed class LruFileReadonce : Workload
{
    /// <summary>dd's and the shell's text, stack and data pages, and dd's buffer, touched all the time.</summary>
    public const int HotPages = 8;

    /// <summary>
    /// The script's <c>sleep 1</c> between <c>wait</c> and <c>rm</c>, at full size. A run at 1/N
    /// sleeps 1/N of it, like every other phase of the run, so that its elapsed time stays the
    /// full-size run's divided by N (at 1/128, a whole second would be a fifth of the run).
    /// </summary>
    public const long SleepBeforeRmNs = 1_000_000_000;

    public override string Name => "lru-file-readonce";

    public override string Summary => "vm-scalability lru-file-readonce: one dd bs=4k per CPU reads its own sparse 10xRAM/nr_cpu file with read(2); nothing is mapped";

    public override long Setup(Sim sim)
    {
        int nrCpus = sim.Cpus.Length;
        long filePages = 10 * sim.Memory.NrFrames / nrCpus;
        if (filePages < Readahead.DefaultRaPages)
        {
            throw new ConfigException($"memory too small for {Name}: each reader's file would be {filePages} pages");
        }
        var files = new AddressSpace[nrCpus];
        var rm = new RemoveFiles(sim.NextPid(), sim.Cpus[0], files)
        {
            AllowedCpus = Enumerable.Range(0, nrCpus).ToArray(),
            SleepFirstNs = SleepBeforeRmNs / sim.Config.ScaleDivisor,
        };
        for (int c = 0; c < nrCpus; c++)
        {
            files[c] = sim.CreateFile($"lru-file-{c}", filePages);
            MmStruct mm = sim.CreateMm();
            long[] hot = sim.MapHotPages(mm, sim.Cpus[c].Node, HotPages);
            var dd = new DdReader(sim.NextPid(), $"dd-{c}", mm, sim.Cpus[c], files[c], hot)
            {
                Reaped = t => rm.ChildExited(sim, t),
                // Not bound to a CPU (the case script uses no taskset): the scheduler may move it within its node (LruFileMmapRead).
                AllowedCpus = sim.NodeCpus[sim.Cpus[c].Node],
            };
            sim.AddUserTask(dd, startAt: sim.Rng.Next(20_000));
        }
        sim.AddSleepingUserTask(rm);
        return filePages * nrCpus;
    }
}

/// <summary>
/// <c>dd bs=4k if=FILE of=/dev/null</c>: read(2) of one page, write(2) to /dev/null, from the
/// file's start to its end. A read that misses the page cache, or reaches the PG_readahead mark,
/// reads the next window ahead first (<see cref="Readahead"/>, allocated __GFP_NORETRY); one whose
/// page is still missing after that (the window's allocation gave up, or reclaim took the page
/// first) reads it alone, as do_generic_file_read's no_cached_page does. A step is up to <see cref="StepPages"/> reads. dd's own user-space loop (about 86 ns a
/// block in [Yuanhan Liu 2014]'s profile: 90 s of user time over ~1.05e9 blocks, the 9.45e8 pages
/// reclaimed plus the ~1e8 still cached at the end) is not charged.
/// </summary>
public sealed class DdReader(int pid, string comm, MmStruct mm, Cpu cpu, AddressSpace file, long[] hot)
: SimTask(pid, comm, mm, cpu)
{
    /// <summary>Reads per step.</summary>
    public const int StepPages = 16;

    /// <summary>The open file's readahead state.</summary>
    public FileRaState Ra { get; } = new();

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        Exec ex = sim.Exec;
        long size = file.SizePages;
        long pos = 0;
        long started = ex.Now;
        while (pos < size)
        {
            ex.What = "read";
            long stepEnd = Math.Min(size, pos + StepPages);
            long from = pos;
            while (pos < stepEnd)
            {
                ex.Sys += sim.Costs.ReadSyscallNs;
                int f = file.FindPage(pos);
                bool marked = f >= 0 && (sim.Memory.Pages[f].Flags & PageFlags.Readahead) != 0;
                if (marked)
                {
                    // page_cache_async_readahead: the read holds a reference on its page while the
                    // next window is read in, so reclaim cannot take it meanwhile; the model copies
                    // it first, which comes to the same.
                    sim.Memory.Pages[f].Flags &= ~PageFlags.Readahead;
                    sim.Filemap.CopyPageToUser(ex, f);
                }
                if (f < 0 || marked)
                {
                    // The next window (async at a mark, sync at a miss), allocated __GFP_NORETRY;
                    // after a sync window that did not bring this page in (its allocation gave up
                    // at the first page one direct reclaim did not produce, or reclaim took the
                    // page between mark and read), no_cached_page reads it alone, retrying.
                    var (start, n, lookahead) = sim.Readahead.Ondemand(Ra, file, pos, hitMarker: marked);
                    for (int attempt = 0; ; attempt++)
                    {
                        if (n > 0)
                        {
                            IEnumerable<Yield>? slow = sim.Readahead.Submit(ex, this, file, start, n, lookahead, out RaRequest req, noRetry: attempt == 0);
                            int got = req.Allocated;
                            if (slow is not null)
                            {
                                yield return Process.Call(slow);
                                ex.What = "read";
                                got = PageAlloc.SlowpathGot(this);
                            }
                            // read_pages, a pagevec at a time (a sync point after each drain).
                            var cursor = new RaCursor(req, got);
                            while (!sim.Readahead.ReadPages(ex, this, file, ref cursor))
                            {
                                yield return Yield.Sync;
                                ex.What = "read";
                            }
                        }
                        if (marked || (f = file.FindPage(pos)) >= 0)
                        {
                            break;
                        }
                        if (attempt == 1)
                        {
                            throw new InvalidOperationException($"{Comm}: page {pos} of {file.Name} missing right after it was read in");
                        }
                        (start, n, lookahead) = (pos, 1, 0);
                    }
                }
                if (!marked)
                {
                    sim.Filemap.CopyPageToUser(ex, f);
                }
                Ra.PrevIndex = pos;
                pos++;
            }
            foreach (long h in hot)
            {
                sim.Mmu.Touch(ex, Mm!, h, write: false);
            }
            sim.PagesDone += pos - from;
            if (pos == size)
            {
                sim.ReaderDone(size, started, ex.Now); // dd's clock stops at its last read, before it waits for a CPU again
            }
            yield return Yield.Resched;
        }
    }
}
