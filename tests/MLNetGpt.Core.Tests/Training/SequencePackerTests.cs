using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>Documents packed into fixed-length sequences, and prompt/completion rows with the loss on the completion.</summary>
public sealed class SequencePackerTests
{
    private const long X = SequencePacker.Ignored;
    private static readonly SpecialIds Gpt2 = new(Bos: 0, Eos: 0, Pad: 0);       // BOS = EOS = pad, as GPT-2's <|endoftext|>
    private static readonly SpecialIds Llama = new(Bos: 1, Eos: 2, Pad: 0);

    [Fact]
    public void Documents_are_joined_with_one_eos_between_them_and_every_token_but_the_first_is_predicted_once()
    {
        var sequences = SequencePacker.PackDocuments([[10, 11, 12], [20, 21], [30]], 4, Gpt2);
        // Stream: 0 10 11 12 0 20 21 0 30 0 (10 tokens, 9 predictions).
        Assert.Equal(3, sequences.Count);
        Assert.Equal([0, 10, 11, 12], sequences[0].Inputs);
        Assert.Equal([10, 11, 12, 0], sequences[0].Targets);
        Assert.Equal([0, 20, 21, 0], sequences[1].Inputs);
        Assert.Equal([20, 21, 0, 30], sequences[1].Targets);
        Assert.Equal([30, 0, 0, 0], sequences[2].Inputs);          // the last sequence is padded
        Assert.Equal([0, X, X, X], sequences[2].Targets);         // and its padding counts no loss
        Assert.Equal(9, sequences.Sum(s => s.CountedTokens));
    }

    [Fact]
    public void With_a_bos_unlike_the_eos_each_document_is_framed_by_both()
    {
        var sequences = SequencePacker.PackDocuments([[10, 11], [20]], 3, Llama);
        // Stream: 1 10 11 2 1 20 2
        Assert.Equal([1, 10, 11], sequences[0].Inputs);
        Assert.Equal([10, 11, 2], sequences[0].Targets);
        Assert.Equal([2, 1, 20], sequences[1].Inputs);
        Assert.Equal([1, 20, 2], sequences[1].Targets);
        Assert.Equal(2, sequences.Count);
    }

    [Fact]
    public void Empty_documents_are_skipped_and_nothing_gives_no_sequence()
    {
        Assert.Empty(SequencePacker.PackDocuments([[], []], 4, Gpt2));
        var sequences = SequencePacker.PackDocuments([[], [5], []], 4, Gpt2);
        Assert.Single(sequences);
        Assert.Equal([0, 5, 0, 0], sequences[0].Inputs);
        Assert.Equal([5, 0, X, X], sequences[0].Targets);
    }

    [Fact]
    public void A_row_counts_loss_on_its_completion_and_eos_only()
    {
        var sequences = SequencePacker.PackRows([([10, 11], [20, 21])], 8, Llama, out int truncated);
        Assert.Equal(0, truncated);
        var s = Assert.Single(sequences);
        Assert.Equal([1, 10, 11, 20, 21, 2, 0, 0], s.Inputs);
        Assert.Equal([X, X, 20, 21, 2, X, X, X], s.Targets);
        Assert.Equal(3, s.CountedTokens);
    }

    [Fact]
    public void Each_row_is_its_own_sequence_even_when_two_would_fit()
    {
        var sequences = SequencePacker.PackRows([([10], [20]), ([11], [21])], 8, Gpt2, out _);
        Assert.Equal(2, sequences.Count);
        Assert.Equal([0, 10, 20, 0, 0, 0, 0, 0], sequences[0].Inputs);
        Assert.Equal([X, 20, 0, X, X, X, X, X], sequences[0].Targets);
        Assert.Equal([X, 21, 0, X, X, X, X, X], sequences[1].Targets);
    }

    [Fact]
    public void A_row_too_long_loses_the_start_of_its_prompt_first()
    {
        var sequences = SequencePacker.PackRows([([10, 11, 12, 13], [20, 21])], 5, Llama, out int truncated);
        Assert.Equal(1, truncated);
        var s = Assert.Single(sequences);
        // BOS 10 11 12 13 20 21 EOS is 8 tokens; 6 fit (5 inputs + 1 target): BOS 12 13 20 21 EOS.
        Assert.Equal([1, 12, 13, 20, 21], s.Inputs);
        Assert.Equal([X, X, 20, 21, 2], s.Targets);
    }

    [Fact]
    public void A_completion_that_alone_does_not_fit_loses_its_eos_then_its_end()
    {
        var sequences = SequencePacker.PackRows([([10, 11], [20, 21, 22, 23, 24])], 4, Llama, out int truncated);
        Assert.Equal(1, truncated);
        var s = Assert.Single(sequences);
        // Only BOS + 4 completion tokens fit; the prompt and the EOS are gone.
        Assert.Equal([1, 20, 21, 22], s.Inputs);
        Assert.Equal([20, 21, 22, 23], s.Targets);

        var exact = Assert.Single(SequencePacker.PackRows([([10], [20, 21, 22, 23])], 4, Llama, out _));
        Assert.Equal([1, 20, 21, 22], exact.Inputs);
        Assert.Equal([20, 21, 22, 23], exact.Targets);     // EOS dropped, every completion token kept
    }

    [Fact]
    public void Without_a_bos_an_empty_prompt_predicts_the_completion_from_its_second_token()
    {
        var noBos = new SpecialIds(Bos: null, Eos: 2, Pad: 0);
        var s = Assert.Single(SequencePacker.PackRows([([], [20, 21])], 4, noBos, out _));
        Assert.Equal([20, 21, 2, 0], s.Inputs);
        Assert.Equal([21, 2, X, X], s.Targets);
    }
}
