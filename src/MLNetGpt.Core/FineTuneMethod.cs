namespace MLNetGpt;

/// <summary>Which weights a fine-tune changes (<see cref="FineTuneOptions.Method"/>).</summary>
public enum FineTuneMethod
{
    /// <summary>Every weight of the model learns (full fine-tuning): the most capacity, the most memory (the weights, their gradients and two AdamW moments).</summary>
    Full,

    /// <summary>
    /// Low-rank adaptation (LoRA, Hu et al. 2021, as Hugging Face PEFT does it): the model's weights stay frozen and each
    /// targeted projection W gains a trainable product B·A of rank <see cref="FineTuneOptions.LoraRank"/>, scaled by
    /// <see cref="FineTuneOptions.LoraAlpha"/> / rank; the written model has the product merged into W.
    /// </summary>
    LoRA,
}
