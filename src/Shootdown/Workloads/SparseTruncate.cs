using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Workloads;

/// <summary>
/// mmtests' sparsetruncate, as [Gorman 2017] ran it (config-io-sparsetruncate-tiny): sparse files of
/// 4 MiB (1024 pages), each read once so that every page is a clean page-cache page, then unlinked
/// — here by one <c>rm</c> after the readers have exited, so the run's <c>truncate</c> entry is
/// the model's cost of truncate_inode_pages per page with the pages just read, to set beside the
/// published timings ([Kara 2017]: about 242–250 ns per page; [Gorman 2017]: 141–149 ns). One
/// reader per file, all on CPU 0 (the benchmark is single-threaded); as many files as fit in half
/// of memory, at most the tiny configuration's 256 (1 GiB).
/// </summary>
public sealed class SparseTruncate : Workload
{
    /// <summary>Pages per file (4 MiB).</summary>
    public const int FilePages = 1024;

    /// <summary>Files in mmtests' config-io-sparsetruncate-tiny (16 directories of 16).</summary>
    public const int MaxFiles = 256;

    public override string Name => "sparse-truncate";

    public override string Summary => "mmtests sparsetruncate: 4 MiB sparse files read once on one CPU, then removed; the truncate entry gives truncate_inode_pages' cost per page";

    public override long Setup(Sim sim)
    {
        long frames = sim.Memory.NrFrames;
        int files = (int)Math.Min(MaxFiles, frames / 2 / FilePages);
        if (files < 1)
        {
            throw new ConfigException($"memory too small for {Name}: one {FilePages}-page file must fit in half of memory ({frames} pages)");
        }
        Cpu cpu = sim.Cpus[0];
        var removed = new AddressSpace[files];
        var rm = new RemoveFiles(sim.NextPid(), cpu, removed);
        for (int i = 0; i < files; i++)
        {
            removed[i] = sim.CreateFile($"sparse-{i}", FilePages);
            sim.AddUserTask(LruFileMmapRead.ReaderOf(sim, removed[i], $"reader-{i}", cpu, rm), startAt: 0);
        }
        sim.AddSleepingUserTask(rm);
        return (long)files * FilePages;
    }
}
