namespace Shootdown.Kernel.Mm;

/// <summary>
/// A two-level table from a page index to a 32-bit value (0 = empty), used both as a page table
/// (virtual page -> PTE) and as a page-cache radix tree (file index -> frame). Leaves hold 512
/// entries, like a page-table page; a leaf whose last entry is cleared returns to a shared pool,
/// so a reader streaming through a file 10x larger than memory keeps only live leaves resident.
/// </summary>
public sealed class RadixMap
{
    public const int LeafShift = 9;
    public const int LeafSize = 1 << LeafShift;
    private const int LeafMask = LeafSize - 1;

    private readonly LeafPool _pool;
    private uint[]?[] _dir;
    private int[] _used;

    public RadixMap(LeafPool pool, long initialIndices = LeafSize)
    {
        _pool = pool;
        int dirSize = (int)Math.Max(1, (initialIndices + LeafMask) >> LeafShift);
        _dir = new uint[]?[dirSize];
        _used = new int[dirSize];
    }

    /// <summary>Number of non-empty entries.</summary>
    public long Count { get; private set; }

    public uint Get(long index)
    {
        long d = index >> LeafShift;
        if ((ulong)d >= (ulong)_dir.Length)
        {
            return 0;
        }
        uint[]? leaf = _dir[d];
        return leaf is null ? 0 : leaf[index & LeafMask];
    }

    public void Set(long index, uint value)
    {
        if (value == 0)
        {
            Clear(index);
            return;
        }
        long d = index >> LeafShift;
        if (d >= _dir.Length)
        {
            int n = (int)Math.Max(d + 1, _dir.Length * 2L);
            Array.Resize(ref _dir, n);
            Array.Resize(ref _used, n);
        }
        uint[]? leaf = _dir[d];
        if (leaf is null)
        {
            leaf = _pool.Rent();
            _dir[d] = leaf;
        }
        ref uint slot = ref leaf[index & LeafMask];
        if (slot == 0)
        {
            _used[d]++;
            Count++;
        }
        slot = value;
    }

    /// <summary>The first index in [from, end) with an entry, or -1; empty leaves are skipped whole.</summary>
    public long NextPresent(long from, long end)
    {
        long i = Math.Max(0, from);
        end = Math.Min(end, (long)_dir.Length << LeafShift);
        while (i < end)
        {
            uint[]? leaf = _dir[i >> LeafShift];
            if (leaf is null)
            {
                i = ((i >> LeafShift) + 1) << LeafShift;
                continue;
            }
            if (leaf[i & LeafMask] != 0)
            {
                return i;
            }
            i++;
        }
        return -1;
    }

    /// <summary>Overwrites an entry known to be present (no bookkeeping).</summary>
    public void Update(long index, uint value)
    {
        _dir[index >> LeafShift]![index & LeafMask] = value;
    }

    /// <summary>
    /// Whether any entry lies in the aligned block of 2^<paramref name="shift"/> indices (at most a
    /// leaf's) that holds <paramref name="index"/>: a page-cache radix tree node's slots, 64 for shift 6.
    /// </summary>
    public bool AnyInBlock(long index, int shift)
    {
        long d = index >> LeafShift;
        if ((ulong)d >= (ulong)_dir.Length)
        {
            return false;
        }
        uint[]? leaf = _dir[d];
        if (leaf is null)
        {
            return false;
        }
        int size = 1 << shift;
        int start = (int)(index & LeafMask) & ~(size - 1);
        return leaf.AsSpan(start, size).IndexOfAnyExcept(0u) >= 0;
    }

    /// <summary>Whether the leaf (page-table page) holding <paramref name="index"/> exists.</summary>
    public bool LeafLive(long index)
    {
        long d = index >> LeafShift;
        return (ulong)d < (ulong)_dir.Length && _dir[d] is not null;
    }

    public void Clear(long index)
    {
        long d = index >> LeafShift;
        if ((ulong)d >= (ulong)_dir.Length)
        {
            return;
        }
        uint[]? leaf = _dir[d];
        if (leaf is null)
        {
            return;
        }
        ref uint slot = ref leaf[index & LeafMask];
        if (slot == 0)
        {
            return;
        }
        slot = 0;
        Count--;
        if (--_used[d] == 0)
        {
            _dir[d] = null;
            _pool.Return(leaf);
        }
    }
}

/// <summary>Free leaves shared by every <see cref="RadixMap"/> of a run.</summary>
public sealed class LeafPool
{
    private readonly Stack<uint[]> _free = new();

    public uint[] Rent() => _free.Count > 0 ? _free.Pop() : new uint[RadixMap.LeafSize];

    public void Return(uint[] leaf)
    {
        // Leaves come back empty: Clear only returns a leaf once every entry is zero.
        _free.Push(leaf);
    }
}
