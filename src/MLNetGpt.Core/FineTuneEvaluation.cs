namespace MLNetGpt;

/// <summary>One evaluation of the validation set during a fine-tune.</summary>
/// <param name="Step">The optimizer steps done when it was evaluated (0: the model before training).</param>
/// <param name="Loss">The mean next-token cross-entropy over the validation set's counted tokens, in nats per token.</param>
public sealed record FineTuneEvaluation(int Step, double Loss);
