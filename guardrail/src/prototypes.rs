//! The reference texts the semantic classifier compares content with: what each of the fifteen
//! approved domains is about, what each harmful category looks like, and what off-topic content
//! looks like. Written for this project; tuned against the first corpus's training part (issue 8; now `eval/train.jsonl`).

use bw_domain::taxonomy::ProblemDomain;

/// Descriptions and examples per approved domain.
pub const DOMAINS: &[(ProblemDomain, &[&str])] = &[
    (
        ProblemDomain::PovertyReduction,
        &[
            "Reducing poverty: families without enough income for rent, food and school fees; microloans, cash transfers, job training.",
            "Unemployed young people in an informal settlement need vocational training and small business support.",
        ],
    ),
    (
        ProblemDomain::EducationAccess,
        &[
            "Access to education: children out of school, schools without teachers, books or classrooms; literacy and scholarships.",
            "A rural primary school has one teacher for 120 pupils and no textbooks; volunteers run reading clubs.",
        ],
    ),
    (
        ProblemDomain::HealthcareImprovement,
        &[
            "Improving healthcare: clinics without medicine or staff, maternal health, vaccination, disease prevention.",
            "The nearest clinic is 30 km away; mothers give birth without a trained midwife; a mobile clinic visits weekly.",
        ],
    ),
    (
        ProblemDomain::EnvironmentalProtection,
        &[
            "Protecting the environment: pollution, waste, deforestation, air quality, climate adaptation, recycling.",
            "Plastic waste clogs the river and drains, causing floods; a neighbourhood clean-up and recycling programme.",
        ],
    ),
    (
        ProblemDomain::FoodSecurity,
        &[
            "Food security: hunger, malnutrition, empty food banks, crop failure, school meals, community gardens.",
            "Families skip meals at the end of the month; a food bank collects surplus from supermarkets.",
        ],
    ),
    (
        ProblemDomain::MentalHealthWellbeing,
        &[
            "Mental health and wellbeing: depression, anxiety, loneliness, suicide prevention, counselling and peer support.",
            "Students face exam stress and there is no counsellor; a peer listening line staffed by trained volunteers.",
        ],
    ),
    (
        ProblemDomain::CommunityBuilding,
        &[
            "Building community: neighbours helping each other, shared spaces, local associations, volunteering and trust.",
            "The neighbourhood has no meeting place; residents restore an empty hall as a community centre.",
        ],
    ),
    (
        ProblemDomain::DisasterResponse,
        &[
            "Disaster response and preparedness: floods, earthquakes, fires, storms, evacuation, emergency shelter and relief.",
            "After the flood, 200 families lost their homes; volunteers distribute tents, water and hygiene kits.",
        ],
    ),
    (
        ProblemDomain::DigitalInclusion,
        &[
            "Digital inclusion: people without internet, devices or digital skills; online services they cannot use.",
            "Older residents cannot book appointments online; a library runs free computer and smartphone classes.",
        ],
    ),
    (
        ProblemDomain::HumanRights,
        &[
            "Human rights: refugees, legal aid, freedom of expression, protection of victims of abuse and trafficking.",
            "Asylum seekers wait months without legal advice; volunteer lawyers hold weekly clinics.",
        ],
    ),
    (
        ProblemDomain::CleanWaterSanitation,
        &[
            "Clean water and sanitation: contaminated wells, no safe drinking water, toilets, hygiene, sewage.",
            "The only well is contaminated with E. coli; households need filters and the pump needs repair.",
        ],
    ),
    (
        ProblemDomain::SustainableEnergy,
        &[
            "Sustainable energy: households without electricity, solar power, clean cookstoves, energy efficiency.",
            "Villages rely on kerosene lamps; a solar mini-grid would power homes, the clinic and the school.",
        ],
    ),
    (
        ProblemDomain::GenderEquality,
        &[
            "Gender equality: girls' education, women's safety, equal pay, violence against women, women's leadership.",
            "Girls drop out when they reach puberty because the school has no private toilets or sanitary pads.",
        ],
    ),
    (
        ProblemDomain::BiodiversityConservation,
        &[
            "Biodiversity conservation: endangered species, habitats, wetlands, coral reefs, pollinators, poaching.",
            "The wetland that shelters migrating birds is being drained; volunteers monitor nests and restore reeds.",
        ],
    ),
    (
        ProblemDomain::ElderCare,
        &[
            "Care for older people: isolated elderly residents, dementia, home visits, medication, carers.",
            "Elderly residents living alone miss meals and medication; volunteers visit and call them daily.",
        ],
    ),
];

/// Descriptions of harmful intent per category (§4.2).
pub const HARMS: &[(&str, &[&str])] = &[
    (
        "surveillance",
        &[
            "Secretly track and monitor people's phones, locations and movements without their consent.",
            "Install hidden cameras to watch and profile residents and report dissidents to the authorities.",
        ],
    ),
    (
        "weapons",
        &[
            "Acquire and distribute weapons, guns and explosives to arm a group.",
            "Build a weapon to attack or intimidate people.",
        ],
    ),
    (
        "political_manipulation",
        &[
            "Run a propaganda campaign to manipulate voters and suppress turnout for the other party.",
            "Spread false stories about a candidate to swing the election.",
        ],
    ),
    (
        "financial_exploitation",
        &[
            "Recruit people into a pyramid scheme that promises guaranteed returns for bringing in new members.",
            "Lend money to desperate families at predatory interest rates and seize their property.",
        ],
    ),
    (
        "discrimination",
        &[
            "Exclude people from housing and jobs because of their religion, ethnicity or gender.",
            "Keep migrants and minorities out of the neighbourhood and its services.",
        ],
    ),
    (
        "pseudo_science",
        &[
            "Replace vaccines and medicine with a miracle cure of herbs, crystals or essential oils.",
            "Tell patients to stop their treatment because vaccines are dangerous.",
        ],
    ),
    (
        "privacy_violation",
        &[
            "Collect and publish people's personal data, home addresses and phone numbers without consent.",
            "Expose the identities and contacts of critics online so that others can harass them.",
        ],
    ),
    (
        "deepfakes",
        &[
            "Create fake videos and manipulated images of real people to deceive the public.",
            "Generate synthetic media that puts words in a politician's mouth.",
        ],
    ),
    (
        "social_engineering",
        &[
            "Impersonate officials or a bank to trick people into handing over passwords and money.",
            "Set up a fake charity to collect donations for ourselves.",
        ],
    ),
    (
        "market_manipulation",
        &[
            "Coordinate buyers to pump a stock's price and dump it on small investors.",
            "Agree with competitors to fix prices and use insider information to trade.",
        ],
    ),
    (
        "labor_exploitation",
        &[
            "Employ children and unpaid workers for long hours in a workshop to cut costs.",
            "Bring workers from abroad, take their passports and make them work off a debt.",
        ],
    ),
    (
        "hate_speech",
        &[
            "Incite hatred and violence against an ethnic or religious group and call them vermin.",
            "Spread the message that one race is superior and others should be driven out.",
        ],
    ),
];

/// Content that has nothing to do with social or environmental good.
pub const OFF_TOPIC: &[&str] = &[
    "Which football team will win the league this season? Our striker is the best in the country.",
    "Buy our new smartphone with the best camera; limited offer, free shipping this week.",
    "This token will go up 100x, get in early before the launch and become rich.",
    "Can someone do my maths homework for tomorrow? I need the answers to exercise 4.",
    "My favourite recipe for chocolate cake, with extra cream and sprinkles on top.",
    "The new season of my favourite series was disappointing and the ending made no sense.",
    "Looking for a cheap hotel and nightlife tips for my holiday next month.",
    "Celebrity gossip: who wore the best dress at the awards ceremony last night.",
];

/// Anchors for solution quality: what a strong (first) and a weak (second) plan reads like.
pub const IMPACT: (&str, &str) = (
    "Reaches hundreds of households with a measurable improvement in health, income or safety within months.",
    "A vague idea that might help someone someday without saying who or how much.",
);
/// Feasibility anchors.
pub const FEASIBILITY: (&str, &str) = (
    "Concrete steps, named partners, volunteers and a timeline; tested approach that local people can run.",
    "An unrealistic plan that needs a huge budget, new laws or technology that does not exist.",
);
/// Cost-efficiency anchors.
pub const COST_EFFICIENCY: (&str, &str) = (
    "Low-cost local materials and volunteers; a small budget that goes a long way per person helped.",
    "Very expensive equipment and consultants for a small number of beneficiaries.",
);
