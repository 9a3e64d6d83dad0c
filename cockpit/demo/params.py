"""Every figure the demo generator uses, in one place, each with its source.

Sources (see shared PARAMETERS.md):
- Walters 2017, BMJ Open e015276: median 0.9 randomized per centre-month, IQR 0.4-2.7.
- Jacques 2022, BMJ Open e059230: median 0.95 (IQR 0.42-2.60); consent rate 72%.
- Anisimov & Fedorov 2007, Stat Med 26:4958: centre rates Gamma-distributed
  (Poisson-Gamma recruitment model).
- Tufts CSDD 2020 / Medidata: 14% to ~30% of activated sites never enrol anyone.
- Mohebati 2012: online trial funnel 429 inquiries -> 189 eligible -> 98 consented
  -> 84 randomized.
- Contemp Clin Trials 2008 (IBS trial): physician referral $12, internet $92, flyer
  $224, print $390 per enrollee; PLOS ONE 2018 review: web adverts far cheaper than
  non-web adverts per randomized.
- Hospital sponsor case: HCP referrals 60% of leads for 20% of the budget.
- Broegger-Mikkelsen 2020: online recruitment faster per active day than offline.
- Screen failure: ~20-30% in genitourinary cancer, 70-80% in Alzheimer's disease.
Figures marked "demo choice" are not published; they are set so that the funnel,
the costs and the planted effects come out in the published ranges.
"""
from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """Sizes of one demo scale."""

    n_studies: int
    n_sites: int
    history_months: int        # months of history ending at `end`
    rate_multiplier: float     # multiplies site rates and so every lead volume
    inactive_sites: int        # planned sites not yet active at `end`
    slow_contact_sites: int
    non_enrolling_per_study: int


# One table for every scale. `small` follows the published site rates as they are
# (multiplier 1). `medium` and `large` are volume settings for load and speed tests:
# their multiplier raises leads per site so that the totals reach ~90k and ~10M leads
# (large: ~125M web events and QR scans, ~30 GB of files, ~25 min; memory ~1 GB).
SCALES: dict[str, Scale] = {
    #                 studies  sites  months  rate x  inactive  slow  non-enrolling/study
    "small": Scale(3, 20, 16, 1.0, 2, 1, 1),
    "medium": Scale(12, 120, 18, 1.7, 8, 4, 1),
    "large": Scale(200, 2000, 36, 5.5, 120, 40, 1),
}

# ---------------------------------------------------------------- site rates

# Randomized per active site-month ~ Gamma(shape, scale) (Anisimov & Fedorov 2007).
# shape 0.8 and scale 1.8 give median 0.90 and quartiles 0.32-1.99: the median of
# Walters 2017 / Jacques 2022 and their quartile ratio (2.60 / 0.42 = 6.2).
SITE_RATE_SHAPE = 0.8
SITE_RATE_SCALE = 1.8
# Demo choice: the lowest rates are lifted so that only the planted non-enrolling
# sites end up with nobody randomized.
SITE_RATE_FLOOR = 0.3
DAYS_PER_MONTH = 30.44
# Sites are activated at least this long before `end`, so every enrolling site has
# had time to randomize someone (lead to randomization takes 4-10 weeks here).
MIN_ACTIVE_DAYS = 150
# Planned activations spread over this share of the window from study start to the
# latest activation, so sites open staggered (demo choice).
ACTIVATION_SPREAD = 0.75
# Days between planned and actual activation ~ Gamma(2, 12): mean 24 days (demo choice).
ACTIVATION_DELAY_SHAPE = 2.0
ACTIVATION_DELAY_SCALE = 12.0

# ---------------------------------------------------------------- segments


@dataclass(frozen=True)
class SegmentSpec:
    """An age band and how its persons move through the funnel."""

    segment_id: str
    name: str
    min_age: int
    max_age: int
    delay_factor: float        # multiplies every patient-side delay (speed)
    completion: float          # P(pre-screener completed | started)
    eligibility_factor: float  # multiplies the study's eligibility rate
    reach: float               # P(reached by the site | eligible)
    consent: float             # P(consented | contacted)


# Consent 0.72 for adults is the Jacques 2022 median. Young adults start fast but
# convert poorly; seniors are slow but convert well (PARAMETERS.md "Shapes"):
# demo choices around that median.
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec("young_adults", "Young adults 18-34", 18, 34, 0.6, 0.84, 0.80, 0.80, 0.55),
    SegmentSpec("adults", "Adults 35-54", 35, 54, 1.0, 0.80, 1.00, 0.88, 0.72),
    SegmentSpec("older_adults", "Older adults 55-69", 55, 69, 1.25, 0.78, 1.05, 0.90, 0.78),
    SegmentSpec("seniors", "Seniors 70+", 70, 120, 1.7, 0.72, 1.10, 0.92, 0.84),
)
MAX_AGE = 89  # oldest generated person

# ---------------------------------------------------------------- channels


@dataclass(frozen=True)
class ChannelSpec:
    """A recruitment channel: setup fields, audience and funnel effects, costs."""

    channel_id: str
    name: str
    kind: str
    online: bool
    code: str                          # used in campaign ids, e.g. C-FB-101-01
    utm_sources: tuple[str, ...]       # aliases accepted in utm_source
    utm_weights: tuple[float, ...]     # how often each alias is used
    utm_medium: str
    lead_share: float                  # share of a study's leads (nominal)
    age_mix: tuple[float, float, float, float]  # share of leads per segment
    eligibility_factor: float          # pre-qualified channels find eligible persons
    consent_bonus: float               # added to the segment's consent rate


# Lead shares: HCP referral brings many leads for a small budget (hospital sponsor
# case: 60% of leads for 20% of budget; here ~30% of leads for ~8% of cost).
# Audiences: Instagram skews young, HCP referrals and paper skew old (demo choice).
CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec("facebook", "Facebook", "paid_social", True, "FB", ("facebook", "fb"), (0.7, 0.3),
                "paid_social", 0.19, (0.15, 0.35, 0.35, 0.15), 1.0, 0.0),
    ChannelSpec("instagram", "Instagram", "paid_social", True, "IG", ("instagram", "ig"), (0.7, 0.3),
                "paid_social", 0.12, (0.60, 0.30, 0.08, 0.02), 0.85, 0.0),
    ChannelSpec("linkedin", "LinkedIn", "paid_social", True, "LI", ("linkedin", "lnkd"), (0.8, 0.2),
                "paid_social", 0.05, (0.20, 0.55, 0.23, 0.02), 0.9, 0.0),
    ChannelSpec("youtube", "YouTube", "paid_social", True, "YT", ("youtube", "yt"), (0.85, 0.15),
                "paid_social", 0.06, (0.30, 0.35, 0.25, 0.10), 0.9, 0.0),
    ChannelSpec("hcp_referral", "HCP referral", "hcp_referral", False, "HR", ("hcp",), (1.0,),
                "referral", 0.30, (0.04, 0.20, 0.38, 0.38), 2.6, 0.08),
    ChannelSpec("patient_community", "Patient community", "community", True, "PC",
                ("community", "patient_forum"), (0.7, 0.3), "community", 0.08,
                (0.15, 0.40, 0.35, 0.10), 1.3, 0.04),
    ChannelSpec("newsletter", "Newsletter", "newsletter", True, "NL", ("newsletter", "email"), (0.8, 0.2),
                "email", 0.07, (0.05, 0.25, 0.40, 0.30), 1.1, 0.0),
    ChannelSpec("paper_brochure", "Paper brochure (QR)", "paper", False, "PB", ("brochure", "qr"), (0.6, 0.4),
                "print", 0.07, (0.05, 0.20, 0.40, 0.35), 1.1, 0.0),
    ChannelSpec("screening_event", "Health-screening event", "screening_event", False, "SE",
                ("screening_event",), (1.0,), "event", 0.06, (0.08, 0.27, 0.40, 0.25), 1.3, 0.03),
)
PAID_CHANNELS = ("facebook", "instagram", "linkedin", "youtube")


# ---------------------------------------------------------------- media plan

# Budgets follow the sponsor's media plan: each channel has one calendar of budget
# flights for the whole portfolio (a level every 2-6 weeks, log-uniform in 0.4x-2x of
# the nominal budget, and about a third of the flights dark), which every study follows
# with its own deviation per flight. Pulsed on/off flighting, planned per channel, is
# what lets a mix model tell the channels apart: each is seen dark, low and high while
# the others are not (demo choice; the calendars of different channels are independent).
FLIGHT_MIN_DAYS, FLIGHT_MAX_DAYS = 14, 42
FLIGHT_LEVEL_RANGE = (0.4, 2.0)
FLIGHT_PAUSE_PROB = 0.35
STUDY_FLIGHT_SD = 0.2      # lognormal sigma of a study's level around the plan's, per flight
# The flights of the drifting channel within DRIFT_LIVE_DAYS of the planted CTR drift
# run at DRIFT_MIN_LEVEL or more, so that the drift has impressions to be seen in.
DRIFT_LIVE_DAYS = 42
DRIFT_MIN_LEVEL = 0.8

# Response (cockpit.demo.media): a channel's expected leads per week over all studies are
# a Hill curve (shape n, half saturation at the channel's typical weekly spend) of the
# geometric adstock of its weekly spend, A_w = (1 - d) x_w + d A_{w-1}, d = the weekly
# carry-over below. Each study gets the share its own adstocked spend has.
#
# Cost per lead of each channel over the history (EUR, demo choice: the media plan
# prices spend so that spend / expected leads is exactly this). They are set so that
# cost per randomized (cost per lead / the channel's randomized per lead, 1-5%) is
# ordered as published and about 1.4x apart from one channel to the next: HCP referral
# cheapest by far (physician referral $12 vs internet $92 per enrollee; HCP referrals
# 60% of leads for 20% of the budget), then web/social, newsletter and community, then
# paper and screening events ($224-$390 per enrollee for flyers and print, posters and
# brochures $3,021 per randomized family). At the funnel's randomized per lead this
# gives about (medium demo, EUR per randomized): HCP 450, Facebook 1,100, Instagram
# 1,400, YouTube 2,300, newsletter 2,800, community 5,000, LinkedIn 5,800, paper 9,000,
# screening events 15,000. The small demo randomizes only 2-25 per channel besides HCP
# referral (~60), so its costs per randomized scatter around these by chance.


@dataclass(frozen=True)
class PaidSpec:
    """Delivery and response of a paid channel (one campaign per study)."""

    cpm_eur: float             # cost per 1,000 impressions
    ctr: float                 # clicks / impressions
    cost_per_lead: float       # EUR per lead over the history
    hill_shape: float          # Hill exponent of the saturating response
    adstock_decay: float       # share of last week's adstock carried into this week
    platform: str              # which export carries the campaign


# CPM/CTR: typical platform benchmarks. Carry-over: social ads act within days, video
# and professional networks for a few weeks (demo choices within Meta Robyn's 0-0.3
# weekly range for digital).
PAID: dict[str, PaidSpec] = {
    "facebook": PaidSpec(8.0, 0.0095, 22.0, 1.4, 0.10, "meta"),
    "instagram": PaidSpec(7.0, 0.0065, 19.0, 1.2, 0.05, "meta"),
    "linkedin": PaidSpec(32.0, 0.0045, 95.0, 1.0, 0.25, "linkedin"),
    "youtube": PaidSpec(9.0, 0.0035, 37.0, 1.6, 0.30, "google"),
}


@dataclass(frozen=True)
class OfflineSpec:
    """Spend and response of an offline channel (one programme per study).

    The spend is booked as cost items (offline_costs): `weekly` one item per week,
    `biweekly` one per newsletter issue (every other week), `event` one fee per
    screening event at a site. Brochures are booked weekly as a print run and its
    distribution to the active sites."""

    cost_per_lead: float       # EUR per lead over the history
    hill_shape: float
    adstock_decay: float       # weekly carry-over; 0 = none
    booking: str               # weekly | biweekly | event
    weekday: int               # booking weekday (0 = Monday)
    description: str


# Carry-over (demo choices, within Robyn's 0.1-0.4 weekly range for print): physicians
# refer for weeks after outreach and education; brochures keep working in waiting rooms;
# community posts and newsletter issues bring leads within days; event sign-ups happen
# on the day.
OFFLINE: dict[str, OfflineSpec] = {
    "hcp_referral": OfflineSpec(20.0, 1.2, 0.40, "weekly", 2, "HCP outreach and education"),
    "patient_community": OfflineSpec(118.0, 1.0, 0.15, "weekly", 3, "Community sponsorship"),
    "newsletter": OfflineSpec(70.0, 1.0, 0.05, "biweekly", 1, "Newsletter issue sponsorship"),
    "paper_brochure": OfflineSpec(214.0, 1.0, 0.35, "weekly", 1, "Brochure print and distribution"),
    "screening_event": OfflineSpec(360.0, 1.3, 0.0, "event", 5, "Screening event fee"),
}
RESPONSE_CHANNELS = PAID_CHANNELS + tuple(OFFLINE)   # every channel whose leads follow its spend
BROCHURE_PRINT_SHARE = 0.4          # share of a weekly brochure item booked as the print run
WEEKEND_SPEND_FACTOR = 0.85
DAILY_SPEND_NOISE = 0.10   # lognormal sigma of day-to-day spend
BOOKING_NOISE = 0.10       # lognormal sigma of an offline cost item around its plan
CPM_NOISE = 0.12
TRACKED_CLICK_SHARE = 0.85  # clicks that reach the web analytics (ad blockers)
EXTRA_PAGE_VIEW_PROB = 0.35  # a click followed by a page view without UTM

# ---------------------------------------------------------------- creatives and A/B


@dataclass(frozen=True)
class CreativeSpec:
    """One creative of a campaign."""

    variant: str
    label: str
    share: float            # planned share of impressions
    ctr_factor: float       # multiplies the channel CTR
    lead_factor: float      # multiplies leads per click


# Default creatives per paid channel (no experiment).
DEFAULT_CREATIVES: dict[str, tuple[CreativeSpec, ...]] = {
    "facebook": (CreativeSpec("video", "video 15s", 0.5, 1.05, 1.0),
                 CreativeSpec("image", "image patient story", 0.5, 0.95, 1.0)),
    "instagram": (CreativeSpec("reel", "reel 10s", 0.6, 1.05, 1.0),
                  CreativeSpec("story", "story swipe-up", 0.4, 0.93, 1.0)),
    "linkedin": (CreativeSpec("image", "single image", 1.0, 1.0, 1.0),),
    "youtube": (CreativeSpec("video", "video 30s", 0.6, 1.0, 1.0),
                CreativeSpec("video", "video 15s bumper", 0.4, 1.0, 1.0)),
}


@dataclass(frozen=True)
class ExperimentSpec:
    """A planted A/B test on the campaign of `channel_id` in study number `study_index`."""

    experiment_id: str
    study_index: int
    channel_id: str
    creatives: tuple[CreativeSpec, ...]
    control_variant: str


# EXP-1 (real effect): video beats text on CTR (+56%) and on leads per click (+50%).
# EXP-2 (no effect): simple vs detailed eConsent invitation, identical rates.
EXPERIMENTS: tuple[ExperimentSpec, ...] = (
    ExperimentSpec("EXP-1", 0, "facebook", (
        CreativeSpec("text", "text only", 1 / 3, 0.85, 1.0),
        CreativeSpec("video", "video 20s", 1 / 3, 1.33, 1.5),
        CreativeSpec("infographic", "infographic", 1 / 3, 0.90, 1.0),
    ), "text"),
    ExperimentSpec("EXP-2", 2, "instagram", (
        CreativeSpec("simple", "simple eConsent invitation", 0.5, 1.0, 1.0),
        CreativeSpec("detailed", "detailed eConsent invitation", 0.5, 1.0, 1.0),
    ), "simple"),
)

# ---------------------------------------------------------------- studies


@dataclass(frozen=True)
class StudyTemplate:
    """What distinguishes a study: phase, area, eligibility and screen failure."""

    label: str
    phase: str
    therapeutic_area: str
    min_age: int
    max_age: int
    eligibility: float          # P(eligible | completed pre-screener, right age)
    screen_fail: float          # P(screen failure | screened)
    randomization_days: float   # median days from screening visit to randomization
    value_per_randomized: int   # EUR, for ROI
    segment_affinity: tuple[float, float, float, float]  # reweights channel audiences
    fail_reasons: tuple[str, ...]


# Screen failure: 20-30% in genitourinary cancer, 70-80% in Alzheimer's disease
# (PARAMETERS.md); others in between (demo choice). Eligibility 0.08-0.14 after a
# completed pre-screener of the broad online audience (e-mail registry funnel: 2,118
# reached the screener -> 128 passed, 6%); pre-qualified channels (HCP referral)
# multiply it. From eligible on, the funnel follows Mohebati 2012 (189 eligible ->
# 84 randomized, 44%) where screen failure is low.
STUDY_TEMPLATES: tuple[StudyTemplate, ...] = (
    StudyTemplate("Prostate cancer", "II", "Oncology (genitourinary)", 45, 85, 0.08, 0.25, 12, 30000,
                  (0.10, 0.80, 1.50, 1.30), ("inclusion_criteria", "lab_values", "imaging")),
    StudyTemplate("Early Alzheimer's disease", "III", "Neurology", 55, 85, 0.14, 0.75, 24, 40000,
                  (0.10, 0.50, 1.50, 1.80), ("imaging", "cognitive_score", "inclusion_criteria")),
    StudyTemplate("Plaque psoriasis", "IV", "Dermatology", 18, 75, 0.09, 0.35, 10, 15000,
                  (1.40, 1.20, 0.70, 0.40), ("inclusion_criteria", "lab_values", "exclusion_criteria")),
    StudyTemplate("Resistant hypertension", "II", "Cardiology", 30, 80, 0.11, 0.45, 14, 25000,
                  (0.40, 1.00, 1.30, 1.10), ("lab_values", "inclusion_criteria", "exclusion_criteria")),
    StudyTemplate("Severe asthma", "III", "Respiratory", 18, 70, 0.11, 0.40, 12, 25000,
                  (1.20, 1.20, 0.90, 0.40), ("lab_values", "inclusion_criteria", "exclusion_criteria")),
    StudyTemplate("Rheumatoid arthritis", "I/II", "Rheumatology", 18, 75, 0.10, 0.50, 16, 35000,
                  (0.60, 1.20, 1.20, 0.70), ("lab_values", "imaging", "inclusion_criteria")),
    StudyTemplate("Type 2 diabetes", "III", "Endocrinology", 30, 75, 0.12, 0.40, 12, 20000,
                  (0.40, 1.10, 1.30, 0.90), ("lab_values", "inclusion_criteria", "exclusion_criteria")),
    StudyTemplate("Irritable bowel syndrome", "II", "Gastroenterology", 18, 70, 0.11, 0.35, 10, 15000,
                  (1.30, 1.20, 0.80, 0.40), ("inclusion_criteria", "exclusion_criteria", "lab_values")),
)
FIRST_STUDY_NUMBER = 101
# Study start dates are spread over the first part of the history (demo choice).
STUDY_START_SPREAD = 0.3
STUDY_DURATION_MONTHS = (24, 36)
TARGET_FACTOR = (0.8, 1.3)   # target vs expected randomized over the planned duration
TARGET_RAMP_SHARE = 0.7      # share of the planned duration at full capacity (ramp-up)

# ---------------------------------------------------------------- funnel

PRESCREEN_UPTAKE_OFFLINE = 0.88   # referred / event sign-ups who open the pre-screener
PRESCREEN_MINUTES = 7.0           # median minutes to complete a pre-screener
REFERRAL_TO_FORM_DAYS = 1.0       # median days from referral or sign-up to the form
INELIGIBLE_REASONS = ("diagnosis", "medication", "comorbidity", "distance")
INELIGIBLE_WEIGHTS = (0.40, 0.20, 0.25, 0.15)
SCREENED_RATE = 0.92              # consented persons who attend screening
WITHDRAW_BEFORE_RANDOMIZATION = 0.03
# Delays (median days, lognormal sigma); patient-side ones scale with the segment.
CONTACT_WORKING_DAYS = (1.0, 0.6)      # site-side: eligible -> first contact
SLOW_CONTACT_WORKING_DAYS = (8.0, 0.3)  # the planted slow-contact sites
NOT_REACHABLE_DAYS = (6.0, 0.3)        # attempts before giving up
CONSENT_DAYS = (6.0, 0.6)
DECLINE_DAYS = (4.0, 0.6)
SCREENING_DAYS = (9.0, 0.5)
SCREEN_FAIL_DAYS = (10.0, 0.4)
WITHDRAW_DAYS = (12.0, 0.5)
DECLINE_REASONS = ("lost_interest", "time_commitment", "travel_distance", "no_reason_given")
WITHDRAW_REASONS = ("lost_interest", "relocated", "personal_reasons")
NON_ENROLLING_SCREENED_RATE = 0.6  # non-enrolling sites screen fewer and randomize nobody
NON_ENROLLING_CONSENT_FACTOR = 0.8  # ... and consent fewer (demo choice)

# ---------------------------------------------------------------- drifts

# KPI drifts at known dates, relative to `end` (months back, rounded to the 1st):
# Facebook CTR of the second study drops 40% (and its leads with it); the busiest
# site's delay to first contact triples (demo choices).
CTR_DRIFT = {"study_index": 1, "channel_id": "facebook", "months_before_end": 4, "relative_change": -0.40}
CONTACT_DRIFT = {"months_before_end": 4, "relative_change": 2.0}

# ---------------------------------------------------------------- contacts and consent

EMAIL_DOMAINS = ("example.com", "example.org", "example.net")   # RFC 2606 reserved
PHONE_SHARE = 0.75               # persons who give a phone number
NATIONAL_FORMAT_SHARE = 0.5      # German numbers written nationally (030 ...) this often
EMAIL_VARIANT_SHARE = 0.2        # persons whose e-mail is spelt differently elsewhere
MULTI_TOUCH_SHARE = 0.05         # persons with 1-2 earlier touches of other channels
NO_TRACKING_SHARE = 0.12         # persons who never grant tracking consent (10-15%)
TRACKING_WITHDRAW_SHARE = 0.02   # persons who withdraw tracking consent later
NOTICE_VERSIONS = ("2024-09", "2025-03", "2026-04")  # privacy notice in force from the 1st

# Fictional phone ranges by city: (country, E.164 prefix, national prefix or "",
# first number, count, digits). DE: Bundesnetzagentur drama numbers (Amtsblatt
# 7/2021, Mitteilung 148/2021); GB: Ofcom drama numbers; US: 555-0100..0199.
PHONE_RANGES: dict[str, tuple[str, str, str, int, int, int]] = {
    "Berlin": ("DE", "+493023125", "030 23125 ", 0, 1000, 3),
    "Hamburg": ("DE", "+494066969", "040 66969 ", 0, 1000, 3),
    "Frankfurt": ("DE", "+496990009", "069 90009 ", 0, 1000, 3),
    "Cologne": ("DE", "+492214710", "0221 4710 ", 0, 1000, 3),
    "Munich": ("DE", "+498999998", "089 99998 ", 0, 1000, 3),
    "London": ("GB", "+44207946", "", 0, 1000, 4),
    "Leeds": ("GB", "+44113496", "", 0, 1000, 4),
    "Manchester": ("GB", "+44161496", "", 0, 1000, 4),
    "Birmingham": ("GB", "+44121496", "", 0, 1000, 4),
    "Bristol": ("GB", "+44117496", "", 0, 1000, 4),
    "Boston": ("US", "+1617555", "", 100, 100, 4),
    "Chicago": ("US", "+1312555", "", 100, 100, 4),
    "Houston": ("US", "+1713555", "", 100, 100, 4),
    "Seattle": ("US", "+1206555", "", 100, 100, 4),
    "Denver": ("US", "+1303555", "", 100, 100, 4),
}
COUNTRY_WEIGHTS = {"DE": 0.4, "GB": 0.3, "US": 0.3}
SITE_FACILITIES = ("Clinical Research Centre", "Trial Unit", "Research Clinic", "Medical Research Institute")

# ---------------------------------------------------------------- screening events

# Saturday screening events every 6-10 weeks per active site, the first 20-60 days
# after activation; an event planned in a dark flight of the plan is not held (demo
# choice: often enough that every live flight holds some).
SCREENING_EVENT_INTERVAL_DAYS = (42, 70)
SCREENING_EVENT_FIRST_DAYS = (20, 60)

# ---------------------------------------------------------------- web noise

# Non-converting traffic per lead of the channel (demo choice, so that touchpoints
# are ~10x leads as in the large scale's 100M touchpoints for 10M leads).
NEWSLETTER_VIEWS_PER_LEAD = 12.0
COMMUNITY_VIEWS_PER_LEAD = 15.0
QR_SCANS_PER_LEAD = 2.5
DIRECT_VIEWS_PER_LEAD = 0.8    # page views without UTM (direct, search)
